// Roundtrip with the Java client (kafka-clients 3.9.1): creates the topic
// with the Admin API, produces the shared records (see roundtrip_records.py)
// with the default producer (idempotent, acks=all) and CODEC, consumes them
// back with assign + seekToBeginning (no group, no commits), checks them.
//
// usage: java -cp ... JavaRoundtrip BOOTSTRAP TOPIC CODEC COUNT

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaRoundtrip {
    private static final String CLIENT = "java";
    private static final int PARTITIONS = 3;
    private static final long DEADLINE_MS = 60_000;

    /** One record as sent or consumed; headers flattened to "k=v" strings. */
    private record Rec(long offset, String key, String value, List<String> headers) {}

    /** What was read back: records per partition and "start..end" offsets. */
    private record Consumed(List<List<Rec>> partitions, List<String> watermarks) {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String codec = args[2];
        int count = Integer.parseInt(args[3]);
        createTopic(bootstrap, topic);
        List<List<Rec>> expected = expected(count);
        produce(bootstrap, topic, codec, count);
        List<String> problems = check(expected, consume(bootstrap, topic, count));
        if (problems.isEmpty()) {
            System.out.println(CLIENT + " " + codec + ": " + count + " records consumed back exactly");
        } else {
            System.out.println(CLIENT + " " + codec + ": FAIL");
            problems.forEach(problem -> System.out.println("  " + problem));
            System.exit(1);
        }
    }

    private static List<List<Rec>> expected(int count) {
        List<List<Rec>> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new ArrayList<>());
        }
        for (int i = 0; i < count; i++) {
            List<Rec> list = partitions.get(i % PARTITIONS);
            list.add(new Rec(list.size(), "key-" + i, "value-" + i + "-" + "abcdefghij".repeat(i % 20),
                    List.of("idx=" + i, "client=" + CLIENT)));
        }
        return partitions;
    }

    /** TLS from TLS_CA (and TLS_KEYSTORE, key and certificate in one PEM
     *  file, for a client certificate); plaintext when TLS_CA is unset. */
    private static void tls(Properties config) {
        String ca = System.getenv("TLS_CA");
        if (ca == null || ca.isEmpty()) {
            return;
        }
        config.put("security.protocol", "SSL");
        config.put("ssl.truststore.type", "PEM");
        config.put("ssl.truststore.location", ca);
        String keystore = System.getenv("TLS_KEYSTORE");
        if (keystore != null && !keystore.isEmpty()) {
            config.put("ssl.keystore.type", "PEM");
            config.put("ssl.keystore.location", keystore);
        }
    }

    private static void createTopic(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        tls(config);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    private static void produce(String bootstrap, String topic, String codec, int count) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        tls(config);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "rafka-roundtrip-java");
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int i = 0; i < count; i++) {
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, i % PARTITIONS,
                        bytes("key-" + i), bytes("value-" + i + "-" + "abcdefghij".repeat(i % 20)));
                record.headers().add("idx", bytes(Integer.toString(i)));
                record.headers().add("client", bytes(CLIENT));
                sent.add(producer.send(record));
            }
            producer.flush();
            for (Future<RecordMetadata> future : sent) {
                future.get(DEADLINE_MS, TimeUnit.MILLISECONDS);
            }
        }
    }

    private static Consumed consume(String bootstrap, String topic, int count) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        tls(config);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "rafka-roundtrip-java");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        List<List<Rec>> consumed = new ArrayList<>();
        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            consumed.add(new ArrayList<>());
            partitions.add(new TopicPartition(topic, p));
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            int received = 0;
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (received < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    List<String> headers = new ArrayList<>();
                    for (Header header : record.headers()) {
                        headers.add(header.key() + "=" + new String(header.value(), StandardCharsets.UTF_8));
                    }
                    consumed.get(record.partition()).add(new Rec(record.offset(),
                            text(record.key()), text(record.value()), headers));
                    received++;
                }
            }
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            Map<TopicPartition, Long> starts = consumer.beginningOffsets(partitions, Duration.ofSeconds(30));
            List<String> watermarks = new ArrayList<>();
            for (TopicPartition partition : partitions) {
                watermarks.add(starts.get(partition) + ".." + ends.get(partition));
            }
            return new Consumed(consumed, watermarks);
        }
    }

    private static List<String> check(List<List<Rec>> expected, Consumed consumed) {
        List<String> problems = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            List<Rec> got = consumed.partitions().get(p);
            List<Rec> want = expected.get(p);
            String watermarks = consumed.watermarks().get(p);
            if (!watermarks.equals("0.." + want.size())) {
                problems.add("partition " + p + ": offsets " + watermarks + ", expected 0.." + want.size());
            }
            if (got.size() != want.size()) {
                problems.add("partition " + p + ": " + got.size() + " records, expected " + want.size());
            }
            for (int i = 0; i < Math.min(got.size(), want.size()) && problems.size() < 10; i++) {
                if (!got.get(i).equals(want.get(i))) {
                    problems.add("partition " + p + ": got " + got.get(i) + ", expected " + want.get(i));
                }
            }
        }
        return problems;
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] bytes) {
        return bytes == null ? null : new String(bytes, StandardCharsets.UTF_8);
    }
}
