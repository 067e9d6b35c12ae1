// A producer quota seen by the Java client (kafka-clients 3.9.1): the
// AdminClient sets producer_byte_rate for one client id
// (alterClientQuotas), a producer with that id sends as fast as its buffer
// lets it for PRODUCE_SECONDS, and the client's own metrics must show the
// throttling the broker asked for (produce-throttle-time-avg and -max > 0,
// KIP-219 throttle_time_ms honoured) while every record is acknowledged and
// the acknowledged byte rate stays near the quota; then the quota is removed
// (no restart) and a fresh producer with the same client id sends the same
// way and is not throttled at all (produce-throttle-time-max == 0).
// Prints one "quota java: PASS|FAIL ..." verdict line; exits 1 on a mismatch.
//
// usage: java -cp ... JavaQuota BOOTSTRAP TOPIC

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaQuota {
    private static final long TIMEOUT_S = 60;
    /** Bytes/s for the client id: low enough that one producer is far over it. */
    private static final double QUOTA = 256 * 1024;
    private static final int RECORD_BYTES = 1024;

    private static final class Mismatch extends RuntimeException {
        Mismatch(String message) {
            super(message);
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new Mismatch(message);
        }
    }

    /** What one producer run saw. */
    private record Run(long acked, long bytes, double seconds, double throttleAvg, double throttleMax) {
        double rate() {
            return bytes / seconds;
        }
    }

    public static void main(String[] args) {
        String bootstrap = args[0];
        String topic = args[1];
        int seconds = Integer.parseInt(System.getenv().getOrDefault("PRODUCE_SECONDS", "10"));
        String clientId = topic + "-producer";
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "rafka-java-quota-admin");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        String summary;
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId));
            setQuota(admin, entity, QUOTA);
            Map<ClientQuotaEntity, Map<String, Double>> described = admin.describeClientQuotas(
                    ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(
                            ClientQuotaEntity.CLIENT_ID, clientId)))).entities().get(TIMEOUT_S, TimeUnit.SECONDS);
            check(described.equals(Map.of(entity, Map.of("producer_byte_rate", QUOTA))),
                    "describeClientQuotas after alter: " + described);

            Run quoted = produce(bootstrap, topic, clientId, seconds);
            check(quoted.throttleMax() > 0 && quoted.throttleAvg() > 0,
                    "over the quota: produce-throttle-time-avg " + quoted.throttleAvg() + " max "
                            + quoted.throttleMax() + ", expected both > 0");
            // The quota's first window may burst (as in Kafka); over the run
            // the acknowledged rate stays near the quota, far below what the
            // unquoted run reaches.
            check(quoted.rate() < QUOTA * 1.5, String.format(
                    "over the quota: acknowledged %.0f B/s, quota %.0f B/s", quoted.rate(), QUOTA));

            setQuota(admin, entity, null);
            described = admin.describeClientQuotas(ClientQuotaFilter.containsOnly(List.of(
                    ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId))))
                    .entities().get(TIMEOUT_S, TimeUnit.SECONDS);
            check(described.isEmpty(), "describeClientQuotas after removal: " + described);
            Run free = produce(bootstrap, topic, clientId, Math.max(2, seconds / 3));
            check(free.throttleMax() == 0, "after removing the quota: produce-throttle-time-max "
                    + free.throttleMax() + ", expected 0");
            check(free.rate() > QUOTA * 2, String.format(
                    "after removing the quota: acknowledged %.0f B/s, expected well over %.0f B/s",
                    free.rate(), QUOTA));
            summary = String.format("producer_byte_rate %.0f B/s for client id %s: %d records acked at %.0f B/s "
                    + "over %.1f s, produce-throttle-time-avg %.1f ms max %.0f ms; quota removed live: "
                    + "%d records at %.0f B/s, produce-throttle-time-max 0",
                    QUOTA, clientId, quoted.acked(), quoted.rate(), quoted.seconds(), quoted.throttleAvg(),
                    quoted.throttleMax(), free.acked(), free.rate());
        } catch (Mismatch mismatch) {
            System.out.println("quota java: FAIL " + mismatch.getMessage());
            System.exit(1);
            return;
        } catch (Exception error) {
            error.printStackTrace();
            System.out.println("quota java: FAIL " + error);
            System.exit(1);
            return;
        }
        System.out.println("quota java: PASS " + summary);
        System.exit(0);
    }

    private static void setQuota(Admin admin, ClientQuotaEntity entity, Double value) throws Exception {
        admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity,
                List.of(new ClientQuotaAlteration.Op("producer_byte_rate", value)))))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** Sends 1 KiB records as fast as the producer takes them for `seconds`, then flushes. */
    private static Run produce(String bootstrap, String topic, String clientId, int seconds) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        config.put(ProducerConfig.BATCH_SIZE_CONFIG, "32768");
        // A small buffer: send() blocks as soon as the broker holds the
        // producer back, so the run measures the broker's pace.
        config.put(ProducerConfig.BUFFER_MEMORY_CONFIG, "262144");
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        AtomicLong acked = new AtomicLong();
        AtomicReference<Exception> failed = new AtomicReference<>();
        byte[] value = new byte[RECORD_BYTES];
        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(seconds);
        double throttleAvg;
        double throttleMax;
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            while (System.nanoTime() < deadline && failed.get() == null) {
                producer.send(new ProducerRecord<>(topic, value), (metadata, error) -> {
                    if (error != null) {
                        failed.compareAndSet(null, error);
                    } else {
                        acked.incrementAndGet();
                    }
                });
            }
            producer.flush();
            Map<String, Double> metrics = new HashMap<>();
            for (Map.Entry<MetricName, ? extends Metric> entry : producer.metrics().entrySet()) {
                if (entry.getKey().group().equals("producer-metrics")) {
                    Object metricValue = entry.getValue().metricValue();
                    if (metricValue instanceof Double number) {
                        metrics.put(entry.getKey().name(), number);
                    }
                }
            }
            throttleAvg = metrics.getOrDefault("produce-throttle-time-avg", Double.NaN);
            throttleMax = metrics.getOrDefault("produce-throttle-time-max", Double.NaN);
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        check(failed.get() == null, "a send failed: " + failed.get());
        check(!Double.isNaN(throttleAvg) && !Double.isNaN(throttleMax),
                "the producer has no produce-throttle-time-avg / -max metric");
        return new Run(acked.get(), acked.get() * (long) RECORD_BYTES, elapsed, throttleAvg, throttleMax);
    }
}
