// Sends the fixture records with the Java client (kafka-clients 3.9.1),
// default producer settings apart from codec and batching: idempotent,
// acks=all.
//
// usage: java -cp ... JavaProduce BOOTSTRAP TOPIC CODEC

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaProduce {
    private static final int RECORD_COUNT = 10;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String codec = args[2];
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "rafka-capture-java");
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        // One batch for all records: a long linger, flush() sends it.
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5000");
        config.put(ProducerConfig.BATCH_SIZE_CONFIG, "1000000");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int i = 0; i < RECORD_COUNT; i++) {
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(
                        topic, 0, bytes("key-" + i), bytes("value-" + i + "-" + "x".repeat(200)));
                record.headers().add("idx", bytes(Integer.toString(i)));
                sent.add(producer.send(record));
            }
            producer.flush();
            List<Long> offsets = new ArrayList<>();
            for (Future<RecordMetadata> future : sent) {
                offsets.add(future.get().offset());
            }
            System.out.println("java: delivered offsets " + offsets);
        }
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
