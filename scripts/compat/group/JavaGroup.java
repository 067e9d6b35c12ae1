// Consumer group with the Java client (kafka-clients 3.9.1): two members of
// one group share a 4-partition topic, consume COUNT records and commit
// synchronously; together they must see every record exactly once and leave
// committed offsets equal to the end offsets. Then a third member of the
// group resumes from those offsets and, of RESUME_COUNT new records, gets
// exactly those. Records are produced once both members hold their final
// assignment (two partitions each), so no partition changes hands between
// a fetch and its commit.
//
// usage: java -cp ... JavaGroup BOOTSTRAP TOPIC GROUP COUNT

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaGroup {
    private static final String CLIENT = "java";
    private static final int PARTITIONS = 4;
    private static final int RESUME_COUNT = 8;
    private static final long DEADLINE_MS = 60_000;
    /** Members notify this after every poll; the main thread waits on it. */
    private static final Object CHANGED = new Object();

    /** One consumer on its own thread: poll, record, commitSync, until stopped. */
    private static final class Member extends Thread {
        private final KafkaConsumer<byte[], byte[]> consumer;
        private final String topic;
        private final List<String> values = new ArrayList<>();
        private Set<Integer> assignment = new HashSet<>();
        private Throwable error;
        private volatile boolean stop;

        Member(String bootstrap, String topic, String group, String name) {
            super(name);
            setDaemon(true);
            this.topic = topic;
            Properties config = new Properties();
            config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            config.put(ConsumerConfig.CLIENT_ID_CONFIG, "rafka-group-" + name);
            config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        }

        @Override
        public void run() {
            try {
                consumer.subscribe(List.of(topic));
                while (!stop) {
                    ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                    if (!records.isEmpty()) {
                        consumer.commitSync();
                    }
                    Set<Integer> assigned = new HashSet<>();
                    consumer.assignment().forEach(tp -> assigned.add(tp.partition()));
                    synchronized (CHANGED) {
                        for (ConsumerRecord<byte[], byte[]> record : records) {
                            values.add(new String(record.value(), StandardCharsets.UTF_8));
                        }
                        assignment = assigned;
                        CHANGED.notifyAll();
                    }
                }
            } catch (Throwable e) {
                synchronized (CHANGED) {
                    error = e;
                    CHANGED.notifyAll();
                }
            } finally {
                consumer.close();
            }
        }

        int received() {
            synchronized (CHANGED) {
                return values.size();
            }
        }

        Set<Integer> assignment() {
            synchronized (CHANGED) {
                return new HashSet<>(assignment);
            }
        }

        List<String> values() {
            synchronized (CHANGED) {
                return new ArrayList<>(values);
            }
        }

        void finish() throws InterruptedException {
            stop = true;
            join(DEADLINE_MS);
        }
    }

    /** Waits (bounded) until the condition holds or a member failed. */
    private static void waitUntil(String what, BooleanSupplier condition, List<Member> members)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        synchronized (CHANGED) {
            while (!condition.getAsBoolean()) {
                for (Member member : members) {
                    if (member.error != null) {
                        throw new IllegalStateException(member.getName() + ": " + member.error, member.error);
                    }
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new IllegalStateException("no " + what + " within " + DEADLINE_MS + " ms");
                }
                CHANGED.wait(left);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        int count = Integer.parseInt(args[3]);
        List<String> problems = new ArrayList<>();
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
            twoMembers(bootstrap, topic, group, count, admin, problems);
            if (problems.isEmpty()) {
                resume(bootstrap, topic, group, problems);
            }
        }
        if (!problems.isEmpty()) {
            System.out.println("group " + CLIENT + ": FAIL");
            problems.forEach(problem -> System.out.println("  " + problem));
            System.exit(1);
        }
        System.out.println("group " + CLIENT + ": PASS (" + count + " records by 2 members exactly once, "
                + "committed = end offsets, resumed with " + RESUME_COUNT + " new only)");
    }

    private static void twoMembers(String bootstrap, String topic, String group, int count, Admin admin,
            List<String> problems) throws Exception {
        List<Member> members = List.of(new Member(bootstrap, topic, group, "member-0"),
                new Member(bootstrap, topic, group, "member-1"));
        members.forEach(Thread::start);
        waitUntil("2+2 assignment", () -> {
            Set<Integer> a = members.get(0).assignment();
            Set<Integer> b = members.get(1).assignment();
            Set<Integer> all = new HashSet<>(a);
            all.addAll(b);
            return a.size() == 2 && b.size() == 2 && all.size() == PARTITIONS;
        }, members);
        List<String> sent = produce(bootstrap, topic, "first-", count);
        waitUntil(count + " records", () -> members.get(0).received() + members.get(1).received() >= count,
                members);
        for (Member member : members) {
            member.finish();
        }
        List<String> got = new ArrayList<>(members.get(0).values());
        got.addAll(members.get(1).values());
        got.sort(null);
        sent.sort(null);
        if (!got.equals(sent)) {
            problems.add("two members consumed " + got.size() + " records (" + new HashSet<>(got).size()
                    + " distinct), expected each of " + count + " once");
        }
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        var ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
        Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        for (TopicPartition tp : latest.keySet()) {
            OffsetAndMetadata offset = committed.get(tp);
            long end = ends.get(tp).offset();
            if (offset == null || offset.offset() != end) {
                problems.add("partition " + tp.partition() + ": committed " + offset + ", end offset " + end);
            }
        }
    }

    private static void resume(String bootstrap, String topic, String group, List<String> problems)
            throws Exception {
        Member member = new Member(bootstrap, topic, group, "member-resume");
        member.start();
        waitUntil("4-partition assignment", () -> member.assignment().size() == PARTITIONS, List.of(member));
        List<String> sent = produce(bootstrap, topic, "resume-", RESUME_COUNT);
        // Old records sit before the new ones in their partition: once every
        // new one arrived, any old one would have arrived too.
        waitUntil(RESUME_COUNT + " new records", () -> member.received() >= RESUME_COUNT, List.of(member));
        member.finish();
        List<String> got = member.values();
        got.sort(null);
        sent.sort(null);
        if (!got.equals(sent)) {
            problems.add("resumed member got " + got.size() + " records, expected the " + RESUME_COUNT
                    + " new ones: " + got.subList(0, Math.min(5, got.size())));
        }
    }

    private static List<String> produce(String bootstrap, String topic, String prefix, int count) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        List<String> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<java.util.concurrent.Future<?>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String value = prefix + i;
                sent.add(value);
                futures.add(producer.send(new ProducerRecord<>(topic, i % PARTITIONS, null,
                        value.getBytes(StandardCharsets.UTF_8))));
            }
            for (var future : futures) {
                future.get(DEADLINE_MS, TimeUnit.MILLISECONDS);
            }
        }
        return sent;
    }
}
