// SASL_PLAINTEXT + PLAIN with the Java client against a running broker.
// good: produces COUNT records to partition 0 of TOPIC (auto-created), reads
// them back from offset 0 (assign + seek, no group) and compares them.
// bad: connects with the given (wrong) password and expects
// SaslAuthenticationException.
//
// usage: java SaslJava BOOTSTRAP TOPIC USER PASSWORD good|bad
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SaslJava {
    static final int COUNT = 20;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], user = args[2], password = args[3], mode = args[4];
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("security.protocol", "SASL_PLAINTEXT");
        common.put("sasl.mechanism", "PLAIN");
        common.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required "
                + "username=\"" + user + "\" password=\"" + password + "\";");
        String problem = mode.equals("bad") ? bad(common) : good(common, topic);
        if (problem != null) {
            System.out.println("java " + mode + ": FAIL: " + problem);
            System.exit(1);
        }
        System.out.println("java " + mode + ": OK");
    }

    static String bad(Properties common) throws InterruptedException {
        Properties props = new Properties();
        props.putAll(common);
        props.put("default.api.timeout.ms", "10000");
        props.put("request.timeout.ms", "5000");
        try (Admin admin = Admin.create(props)) {
            admin.listTopics().names().get();
            return "metadata answered without authentication";
        } catch (ExecutionException e) {
            if (e.getCause() instanceof SaslAuthenticationException) {
                System.out.println("authentication error: " + e.getCause().getMessage());
                return null;
            }
            return "not an authentication error: " + e.getCause();
        }
    }

    static String good(Properties common, String topic) throws Exception {
        Properties producerProps = new Properties();
        producerProps.putAll(common);
        producerProps.put("acks", "all");
        List<String> expected = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < COUNT; i++) {
                expected.add("value-" + i);
                producer.send(new ProducerRecord<>(topic, 0, null, "value-" + i)).get();
            }
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(common);
        consumerProps.put("enable.auto.commit", "false");
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition partition = new TopicPartition(topic, 0);
            consumer.assign(List.of(partition));
            consumer.seek(partition, 0);
            long deadline = System.currentTimeMillis() + 60_000;
            while (values.size() < COUNT && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    values.add(record.value());
                }
            }
        }
        if (!values.equals(expected)) return "read back " + values + ", expected " + expected;
        System.out.println(COUNT + " records produced and consumed back");
        return null;
    }
}
