// The Java client (kafka-clients 3.9.1) as the producer and the checker of
// a fault run against a 3-node rafka cluster (java-faults-cluster.sh owns
// the cluster and the faults; this program only talks to it).
//
//   leader   BOOTSTRAP TOPIC PARTITION
//            prints the partition's leader id (AdminClient.describeTopics),
//            -1 while it has none.
//   produce  BOOTSTRAP TOPIC PARTITIONS NOTES STOP [PRODUCER]
//            a KafkaProducer with idempotence and acks=all (Kafka 3.x's
//            defaults, spelled out) sends value "java-<seq>" (with
//            PRODUCER, the cargo fault tests' checker id
//            "p<PRODUCER>-s<seq, 9 digits>") with key "k<seq>" to
//            partition seq % PARTITIONS, a few hundred a second, until
//            the file STOP exists; then flushes and closes. Every send is
//            noted in NOTES ("-": standard output) when its callback
//            runs: "ack P O VALUE" (acknowledged at partition P, offset O)
//            or "fail VALUE ERROR" (never acknowledged). Prints "acked=N
//            failed=M" (last in NOTES when that is standard output).
//   verify   BOOTSTRAP TOPIC PARTITIONS NOTES GROUP
//            reads every partition from its start to its end offset
//            (assign, read_uncommitted) and checks the notes against it:
//            no acknowledged record lost (read at its offset with its
//            value), no record read that was never sent (phantom), no
//            offset holding another value than the one acknowledged there
//            (reused), no value read twice (duplicate: idempotence). Then a
//            member of GROUP reads about half the records and commits; a
//            new member resumes exactly at the committed offsets and reads
//            on without a gap up to the ends. Prints the counts; exits 1
//            with "problem: ..." lines when a check fails.
//
// usage: java -cp ... JavaFaults MODE ARGS...

import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaFaults {
    private static final long DEADLINE_MS = 120_000;
    private static final long CALL_TIMEOUT_S = 30;

    private JavaFaults() {
    }

    private static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    private static void check(boolean condition, String problem) throws Failure {
        if (!condition) {
            throw new Failure(problem);
        }
    }

    private static void leader(String bootstrap, String topic, int partition) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                    .get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
            for (TopicPartitionInfo info : description.partitions()) {
                if (info.partition() == partition) {
                    System.out.println(info.leader() == null || info.leader().isEmpty() ? -1 : info.leader().id());
                    return;
                }
            }
            throw new Failure(topic + " has no partition " + partition);
        }
    }

    private static void produce(String bootstrap, String topic, int partitions, String notes, Path stop,
            Integer idProducer) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "rafka-faults-producer");
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        // Long enough to outlast any failover the script causes.
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        BufferedWriter out = notes.equals("-")
                ? new BufferedWriter(new OutputStreamWriter(new FileOutputStream(FileDescriptor.out),
                        StandardCharsets.UTF_8))
                : Files.newBufferedWriter(Path.of(notes), StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(config, new StringSerializer(), new StringSerializer())) {
            long seq = 0;
            while (!Files.exists(stop)) {
                String value = idProducer == null
                        ? "java-" + seq
                        : String.format("p%d-s%09d", idProducer, seq);
                int partition = (int) (seq % partitions);
                producer.send(new ProducerRecord<>(topic, partition, "k" + seq, value), (metadata, error) -> {
                    String line;
                    if (error == null && metadata.hasOffset()) {
                        acked.incrementAndGet();
                        line = "ack " + metadata.partition() + " " + metadata.offset() + " " + value;
                    } else {
                        failed.incrementAndGet();
                        String why = error == null ? "no offset" : error.getClass().getSimpleName();
                        line = "fail " + value + " " + why;
                    }
                    note(out, line);
                });
                seq++;
                Thread.sleep(2);
            }
            producer.flush();
        }
        String summary = "acked=" + acked.get() + " failed=" + failed.get();
        if (notes.equals("-")) {
            note(out, summary);
        } else {
            System.out.println(summary);
        }
        out.close();
    }

    private static void note(BufferedWriter out, String line) {
        synchronized (out) {
            try {
                out.write(line);
                out.newLine();
                out.flush();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
    }

    /** partition -> offset -> value, acknowledged; and every value sent. */
    private record Notes(Map<Integer, Map<Long, String>> acked, Set<String> sent) {
    }

    private static Notes notes(Path path) throws IOException {
        Map<Integer, Map<Long, String>> acked = new TreeMap<>();
        Set<String> sent = new HashSet<>();
        for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
            String[] parts = line.split(" ");
            if (parts[0].equals("ack")) {
                acked.computeIfAbsent(Integer.parseInt(parts[1]), p -> new TreeMap<>())
                        .put(Long.parseLong(parts[2]), parts[3]);
                sent.add(parts[3]);
            } else if (parts[0].equals("fail")) {
                sent.add(parts[1]);
            }
        }
        return new Notes(acked, sent);
    }

    private static Properties consumerConfig(String bootstrap, String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return config;
    }

    private static List<TopicPartition> partitionsOf(String topic, int partitions) {
        List<TopicPartition> all = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            all.add(new TopicPartition(topic, p));
        }
        return all;
    }

    private static void verify(String bootstrap, String topic, int partitions, Path notesPath, String group)
            throws Exception {
        Notes notes = notes(notesPath);
        List<TopicPartition> all = partitionsOf(topic, partitions);
        // partition -> offset -> value, as read.
        Map<Integer, Map<Long, String>> read = new TreeMap<>();
        Map<TopicPartition, Long> ends;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(
                consumerConfig(bootstrap, null), new StringDeserializer(), new StringDeserializer())) {
            consumer.assign(all);
            consumer.seekToBeginning(all);
            ends = consumer.endOffsets(all, Duration.ofSeconds(CALL_TIMEOUT_S));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (true) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    read.computeIfAbsent(record.partition(), p -> new TreeMap<>())
                            .put(record.offset(), record.value());
                }
                boolean atEnd = true;
                for (TopicPartition tp : all) {
                    atEnd &= consumer.position(tp, Duration.ofSeconds(CALL_TIMEOUT_S)) >= ends.get(tp);
                }
                if (atEnd) {
                    break;
                }
                check(System.currentTimeMillis() < deadline, "read the topic to its end offsets " + ends);
            }
        }
        long acked = 0;
        long lost = 0;
        long reused = 0;
        List<String> problems = new ArrayList<>();
        for (Map.Entry<Integer, Map<Long, String>> partition : notes.acked().entrySet()) {
            Map<Long, String> there = read.getOrDefault(partition.getKey(), Map.of());
            for (Map.Entry<Long, String> ack : partition.getValue().entrySet()) {
                acked++;
                String found = there.get(ack.getKey());
                if (found == null) {
                    lost++;
                    problems.add("lost " + ack.getValue() + " at " + partition.getKey() + "/" + ack.getKey());
                } else if (!found.equals(ack.getValue())) {
                    reused++;
                    problems.add(partition.getKey() + "/" + ack.getKey() + " acknowledged " + ack.getValue()
                            + ", holds " + found);
                }
            }
        }
        long records = 0;
        long phantom = 0;
        long duplicate = 0;
        Map<String, String> seenAt = new HashMap<>();
        for (Map.Entry<Integer, Map<Long, String>> partition : read.entrySet()) {
            for (Map.Entry<Long, String> record : partition.getValue().entrySet()) {
                records++;
                String at = partition.getKey() + "/" + record.getKey();
                if (!notes.sent().contains(record.getValue())) {
                    phantom++;
                    problems.add("phantom " + record.getValue() + " at " + at);
                }
                String before = seenAt.put(record.getValue(), at);
                if (before != null) {
                    duplicate++;
                    problems.add(record.getValue() + " at " + before + " and " + at);
                }
            }
        }
        System.out.println("acked=" + acked + " read=" + records + " lost=" + lost + " phantom=" + phantom
                + " reused=" + reused + " duplicate=" + duplicate);
        check(acked > 0, "nothing was acknowledged");
        check(problems.isEmpty(), problems.size() + " problems: " + problems.stream().limit(10).toList());
        System.out.println("ok: every acknowledged record read once at its offset, nothing else read");

        // A group: one member reads about half and commits, a new member
        // resumes exactly there and reads on without a gap.
        long half = records / 2;
        Map<TopicPartition, OffsetAndMetadata> committed;
        try (KafkaConsumer<String, String> first = new KafkaConsumer<>(
                consumerConfig(bootstrap, group), new StringDeserializer(), new StringDeserializer())) {
            first.subscribe(List.of(topic));
            long taken = 0;
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (taken < half) {
                taken += first.poll(Duration.ofMillis(200)).count();
                check(System.currentTimeMillis() < deadline, "the first member read " + taken + " of " + half);
            }
            first.commitSync(Duration.ofSeconds(CALL_TIMEOUT_S));
            committed = first.committed(new HashSet<>(all), Duration.ofSeconds(CALL_TIMEOUT_S));
        }
        Map<TopicPartition, Long> next = new HashMap<>();
        for (TopicPartition tp : all) {
            OffsetAndMetadata at = committed.get(tp);
            next.put(tp, at == null ? 0L : at.offset());
        }
        try (KafkaConsumer<String, String> second = new KafkaConsumer<>(
                consumerConfig(bootstrap, group), new StringDeserializer(), new StringDeserializer())) {
            second.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (true) {
                for (ConsumerRecord<String, String> record : second.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(topic, record.partition());
                    long expected = next.get(tp);
                    check(record.offset() == expected, "the new member read " + tp + " at " + record.offset()
                            + ", expected " + expected + " (committed " + committed.get(tp) + ")");
                    next.put(tp, expected + 1);
                }
                boolean done = true;
                for (TopicPartition tp : all) {
                    done &= next.get(tp) >= ends.get(tp);
                }
                if (done) {
                    break;
                }
                check(System.currentTimeMillis() < deadline, "the new member reached " + next + " of " + ends);
            }
        }
        System.out.println("ok: group " + group + " resumed at " + committed.values().stream()
                .map(o -> o == null ? "-" : Long.toString(o.offset())).toList() + " and read on without a gap");
    }

    public static void main(String[] args) throws Exception {
        try {
            switch (args.length > 0 ? args[0] : "") {
                case "leader" -> leader(args[1], args[2], Integer.parseInt(args[3]));
                case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]), args[4], Path.of(args[5]),
                        args.length > 6 ? Integer.valueOf(args[6]) : null);
                case "verify" -> verify(args[1], args[2], Integer.parseInt(args[3]), Path.of(args[4]), args[5]);
                default -> throw new Failure("usage: JavaFaults leader|produce|verify ARGS...");
            }
        } catch (Failure e) {
            System.out.println("problem: " + e.getMessage());
            System.exit(1);
        }
        System.exit(0);
    }
}
