// Transactions with the Java client (kafka-clients 3.9.1) against one
// broker: the same six scenarios as confluent_kafka_txn.py, each on topics,
// a transactional.id and a group of its own.
//
//   commit   init, begin, 10 records to 2 partitions, commit: a
//            read_committed consumer reads exactly those 10 values.
//   abort    begin, 10 records, abort: read_committed sees none of them,
//            read_uncommitted sees all 10.
//   open     begin, 5 records, flush, no commit: read_committed gets nothing
//            for 3 s while read_uncommitted sees the 5; after the commit the
//            same read_committed consumer sees the 5.
//   offsets  a group member reads input; sendOffsetsToTransaction in a
//            committed transaction moves the group's committed offsets
//            (Admin listConsumerGroupOffsets, requireStable) to the
//            position; in an aborted one it leaves them unchanged.
//   fencing  producer B's initTransactions with A's transactional.id fences
//            A: A's next send/commit fails with ProducerFencedException or
//            InvalidProducerEpochException, and A's open transaction is
//            aborted.
//   ctp      consume-transform-produce of COUNT records in transactions,
//            ~20% aborted at random (seeded), re-seeking to the committed
//            offsets after each abort: the read_committed output holds each
//            input's transformation exactly once.
//
// "Read exactly" means: after the transactions are over, a plain producer
// appends an end mark to every partition and the consumer reads until it
// has seen the mark on each, so no fixed wait decides what "all" is. Every
// blocking call has a bound (max.block.ms, poll timeouts, get(timeout)).
// One line per scenario, then the verdict "txn java: PASS|FAIL ..."; exits
// 1 on any failure. A failing initTransactions (a broker without
// transactions) ends the run at once.
//
// usage: java -cp ... JavaTxn BOOTSTRAP RUN_ID [SCENARIO...]
//   (no SCENARIO: those in TXN_SCENARIOS, space-separated, else all)
//   env: TXN_COUNT (ctp input records, 100000), TXN_SEED (ctp's abort choices),
//        TXN_ABORT_RATIO (ctp's share of aborted transactions, 0.2),
//        TXN_BATCH_BYTES (transactional producers' batch.size, 16384)

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaTxn {
    private static final String CLIENT = "java";
    private static final int TIMEOUT_S = 30;
    private static final long DEADLINE_MS = 60_000;
    private static final long OPEN_TXN_WINDOW_MS = 3_000;
    private static final long COMMITTED_WAIT_MS = 10_000;
    private static final long CTP_DEADLINE_MS = 240_000;
    private static final double CTP_ABORT_RATIO = 0.2;
    private static final Duration POLL = Duration.ofMillis(200);

    /** A scenario's expectation did not hold. */
    static class Fail extends Exception {
        private static final long serialVersionUID = 1L;

        Fail(String message) {
            super(message);
        }

        Fail(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** initTransactions failed: the broker does not serve transactions. */
    static final class NoTransactions extends Fail {
        private static final long serialVersionUID = 1L;

        NoTransactions(String message, Throwable cause) {
            super(message, cause);
        }
    }

    static void check(boolean condition, String message) throws Fail {
        if (!condition) {
            throw new Fail(message);
        }
    }

    /** A (partition, value) pair to produce. */
    record Rec(int partition, String value) {
    }

    private final String bootstrap;
    private final String runId;
    private final Admin admin;

    JavaTxn(String bootstrap, String runId, Admin admin) {
        this.bootstrap = bootstrap;
        this.runId = runId;
        this.admin = admin;
    }

    String name(String scenario, String what) {
        return "txn-" + runId + "-" + scenario + "-" + what;
    }

    void createTopics(int partitions, String... topics) throws Exception {
        List<NewTopic> newTopics = new ArrayList<>();
        for (String topic : topics) {
            newTopics.add(new NewTopic(topic, partitions, (short) 1));
        }
        admin.createTopics(newTopics).all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** A transactional producer after initTransactions. */
    KafkaProducer<String, String> txnProducer(String transactionalId) throws Fail {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "rafka-txn-" + transactionalId);
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        // Smaller batches split a partition's records of one transaction
        // over several pipelined produce requests.
        String batchBytes = System.getenv("TXN_BATCH_BYTES");
        if (batchBytes != null) {
            config.put(ProducerConfig.BATCH_SIZE_CONFIG, batchBytes);
        }
        // Bounds initTransactions, commit/abort, sendOffsetsToTransaction
        // and a send() waiting for metadata or buffer space.
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(TIMEOUT_S * 1000));
        KafkaProducer<String, String> producer =
                new KafkaProducer<>(config, new StringSerializer(), new StringSerializer());
        try {
            producer.initTransactions();
        } catch (KafkaException e) {
            producer.close(Duration.ZERO);
            throw new NoTransactions("initTransactions(" + transactionalId + ") failed: " + e
                    + " (does the broker serve FindCoordinator for transactions and InitProducerId with a "
                    + "transactional.id?)", e);
        }
        return producer;
    }

    void producePlain(String topic, List<Rec> records) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(TIMEOUT_S * 1000));
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(config, new StringSerializer(), new StringSerializer())) {
            awaitSends(producer, topic, records, "plain");
        }
    }

    /** Appends the end mark to every partition (see the header comment). */
    void seal(String topic, int partitions, String mark) throws Exception {
        List<Rec> marks = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            marks.add(new Rec(p, mark));
        }
        producePlain(topic, marks);
    }

    /** Sends records and waits (bounded) for every acknowledgement. */
    static void awaitSends(KafkaProducer<String, String> producer, String topic, List<Rec> records, String what)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (Rec rec : records) {
            futures.add(producer.send(new ProducerRecord<>(topic, rec.partition(), null, rec.value())));
        }
        producer.flush();
        for (Future<RecordMetadata> future : futures) {
            try {
                future.get(TIMEOUT_S, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new Fail(what + " produce to " + topic + " failed: " + e.getCause(), e.getCause());
            }
        }
    }

    KafkaConsumer<String, String> groupConsumer(String group, String topic, int maxPollRecords) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "rafka-txn-" + group);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(maxPollRecords));
        KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(config, new StringDeserializer(), new StringDeserializer());
        consumer.subscribe(List.of(topic));
        return consumer;
    }

    /**
     * A consumer assigned every partition of a topic from the beginning,
     * without a group, at one isolation level. Keeps what it received.
     */
    final class Reader implements AutoCloseable {
        final String topic;
        final String isolation;
        final KafkaConsumer<String, String> consumer;
        final List<List<String>> values = new ArrayList<>();
        final List<Set<String>> marks = new ArrayList<>();

        Reader(String topic, int partitions, String isolation) {
            this.topic = topic;
            this.isolation = isolation;
            Properties config = new Properties();
            config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
            consumer = new KafkaConsumer<>(config, new StringDeserializer(), new StringDeserializer());
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
                values.add(new ArrayList<>());
                marks.add(new HashSet<>());
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
        }

        private void pollOnce(Duration timeout) {
            for (ConsumerRecord<String, String> record : consumer.poll(timeout)) {
                if (record.value().startsWith("end-")) {
                    marks.get(record.partition()).add(record.value());
                } else {
                    values.get(record.partition()).add(record.value());
                }
            }
        }

        /** Polls for a fixed window (for what must not arrive). */
        void pollFor(long millis) {
            long deadline = System.currentTimeMillis() + millis;
            long left;
            while ((left = deadline - System.currentTimeMillis()) > 0) {
                pollOnce(Duration.ofMillis(Math.min(left, 200)));
            }
        }

        /** Polls until every partition delivered `mark`; the values so far. */
        List<List<String>> untilMark(String mark) throws Fail {
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (!marks.stream().allMatch(m -> m.contains(mark))) {
                if (System.currentTimeMillis() > deadline) {
                    List<Integer> missing = new ArrayList<>();
                    for (int p = 0; p < marks.size(); p++) {
                        if (!marks.get(p).contains(mark)) {
                            missing.add(p);
                        }
                    }
                    throw new Fail(isolation + " consumer of " + topic + ": no " + mark + " on partitions "
                            + missing + " within " + DEADLINE_MS + " ms (received " + received() + " values)");
                }
                pollOnce(POLL);
            }
            return values;
        }

        int received() {
            return values.stream().mapToInt(List::size).sum();
        }

        boolean anyMark() {
            return marks.stream().anyMatch(m -> !m.isEmpty());
        }

        @Override
        public void close() {
            consumer.close(Duration.ofSeconds(5));
        }
    }

    /** value prefix-i goes to partition i % partitions. */
    static List<Rec> txnRecords(String prefix, int count, int partitions) {
        List<Rec> records = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            records.add(new Rec(i % partitions, prefix + "-" + i));
        }
        return records;
    }

    static List<List<String>> byPartition(List<Rec> records, int partitions) {
        List<List<String>> out = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            out.add(new ArrayList<>());
        }
        for (Rec rec : records) {
            out.get(rec.partition()).add(rec.value());
        }
        return out;
    }

    static void expectValues(List<List<String>> got, List<List<String>> expected, String what) throws Fail {
        check(got.equals(expected), what + ": got " + summary(got) + ", expected " + summary(expected));
    }

    static String summary(List<List<String>> perPartition) {
        StringBuilder out = new StringBuilder();
        for (int p = 0; p < perPartition.size(); p++) {
            List<String> values = perPartition.get(p);
            out.append(p == 0 ? "" : "; ").append("p").append(p).append(": ").append(values.size()).append(' ')
                    .append(values.subList(0, Math.min(4, values.size()))).append(values.size() > 4 ? "..." : "");
        }
        return out.toString();
    }

    static String transform(String value) {
        return "out-" + value;
    }

    String scenarioCommit() throws Exception {
        String topic = name("commit", "out");
        int partitions = 2;
        createTopics(partitions, topic);
        List<Rec> records = txnRecords("commit", 10, partitions);
        try (KafkaProducer<String, String> producer = txnProducer(name("commit", "txn"))) {
            producer.beginTransaction();
            awaitSends(producer, topic, records, "transactional");
            producer.commitTransaction();
        }
        seal(topic, partitions, "end-1");
        try (Reader reader = new Reader(topic, partitions, "read_committed")) {
            expectValues(reader.untilMark("end-1"), byPartition(records, partitions), "read_committed");
        }
        return "10 records in 2 partitions, read_committed read exactly them";
    }

    String scenarioAbort() throws Exception {
        String topic = name("abort", "out");
        int partitions = 2;
        createTopics(partitions, topic);
        List<Rec> records = txnRecords("aborted", 10, partitions);
        try (KafkaProducer<String, String> producer = txnProducer(name("abort", "txn"))) {
            producer.beginTransaction();
            awaitSends(producer, topic, records, "transactional");
            producer.abortTransaction();
        }
        seal(topic, partitions, "end-1");
        try (Reader reader = new Reader(topic, partitions, "read_committed")) {
            expectValues(reader.untilMark("end-1"), byPartition(List.of(), partitions), "read_committed");
        }
        try (Reader reader = new Reader(topic, partitions, "read_uncommitted")) {
            expectValues(reader.untilMark("end-1"), byPartition(records, partitions), "read_uncommitted");
        }
        return "read_committed saw none of 10 aborted records, read_uncommitted all 10";
    }

    String scenarioOpen() throws Exception {
        String topic = name("open", "out");
        int partitions = 2;
        createTopics(partitions, topic);
        List<Rec> records = txnRecords("open", 5, partitions);
        try (KafkaProducer<String, String> producer = txnProducer(name("open", "txn"));
                Reader committed = new Reader(topic, partitions, "read_committed");
                Reader uncommitted = new Reader(topic, partitions, "read_uncommitted")) {
            producer.beginTransaction();
            awaitSends(producer, topic, records, "transactional");
            committed.pollFor(OPEN_TXN_WINDOW_MS);
            check(committed.received() == 0 && !committed.anyMark(),
                    "read_committed saw " + summary(committed.values) + " of an open transaction");
            // The mark lands after the open transaction's records: only
            // read_uncommitted can reach it before the commit.
            seal(topic, partitions, "end-1");
            expectValues(uncommitted.untilMark("end-1"), byPartition(records, partitions),
                    "read_uncommitted during the open transaction");
            committed.pollFor(500);
            check(committed.received() == 0,
                    "read_committed saw " + summary(committed.values) + " before the commit");
            producer.commitTransaction();
            seal(topic, partitions, "end-2");
            expectValues(committed.untilMark("end-2"), byPartition(records, partitions),
                    "read_committed after the commit");
        }
        return "read_committed saw nothing for " + OPEN_TXN_WINDOW_MS / 1000 + " s, then the 5 after the commit";
    }

    /** The next non-empty poll of a group consumer (bounded). */
    static List<ConsumerRecord<String, String>> pollBatch(KafkaConsumer<String, String> consumer) throws Fail {
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        while (System.currentTimeMillis() < deadline) {
            ConsumerRecords<String, String> records = consumer.poll(POLL);
            if (!records.isEmpty()) {
                List<ConsumerRecord<String, String>> batch = new ArrayList<>();
                records.forEach(batch::add);
                return batch;
            }
        }
        throw new Fail("group consumer got no records within " + DEADLINE_MS + " ms");
    }

    /** Polls until at least `count` records arrived (bounded). */
    static List<ConsumerRecord<String, String>> pollAtLeast(KafkaConsumer<String, String> consumer, int count)
            throws Fail {
        List<ConsumerRecord<String, String>> batch = new ArrayList<>();
        while (batch.size() < count) {
            batch.addAll(pollBatch(consumer));
        }
        return batch;
    }

    /** {partition: offset after the last record read}. */
    static Map<TopicPartition, OffsetAndMetadata> nextOffsets(List<ConsumerRecord<String, String>> batch) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<String, String> record : batch) {
            TopicPartition tp = new TopicPartition(record.topic(), record.partition());
            OffsetAndMetadata previous = offsets.get(tp);
            if (previous == null || previous.offset() <= record.offset()) {
                offsets.put(tp, new OffsetAndMetadata(record.offset() + 1));
            }
        }
        return offsets;
    }

    /**
     * begin, one transformed record per input record, sendOffsets (the
     * position after the batch). Leaves the transaction open.
     */
    static Map<TopicPartition, OffsetAndMetadata> transactBatch(KafkaProducer<String, String> producer,
            KafkaConsumer<String, String> consumer, List<ConsumerRecord<String, String>> batch, String outputTopic)
            throws Exception {
        producer.beginTransaction();
        List<Rec> outputs = new ArrayList<>();
        for (ConsumerRecord<String, String> record : batch) {
            outputs.add(new Rec(record.partition(), transform(record.value())));
        }
        awaitSends(producer, outputTopic, outputs, "transactional");
        Map<TopicPartition, OffsetAndMetadata> offsets = nextOffsets(batch);
        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
        return offsets;
    }

    /** The group's committed offsets as {partition: offset}, stable only. */
    Map<Integer, Long> groupOffsets(String group) throws Exception {
        ListConsumerGroupOffsetsOptions options = new ListConsumerGroupOffsetsOptions().requireStable(true);
        Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group, options)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<Integer, Long> out = new TreeMap<>();
        committed.forEach((tp, offset) -> {
            if (offset != null) {
                out.put(tp.partition(), offset.offset());
            }
        });
        return out;
    }

    /**
     * Polls the group's committed offsets until they equal `expected`: a
     * transaction's offsets become visible once its markers are written,
     * which may be a little after commitTransaction returned. Bounded.
     */
    void awaitGroupOffsets(String group, Map<Integer, Long> expected, String what) throws Exception {
        long deadline = System.currentTimeMillis() + COMMITTED_WAIT_MS;
        while (true) {
            Map<Integer, Long> got = groupOffsets(group);
            if (got.equals(expected)) {
                return;
            }
            check(System.currentTimeMillis() < deadline, what + ": committed offsets " + got + ", expected "
                    + expected + " (waited " + COMMITTED_WAIT_MS + " ms)");
            Thread.sleep(100);
        }
    }

    static Map<Integer, Long> plain(Map<TopicPartition, OffsetAndMetadata> offsets) {
        Map<Integer, Long> out = new TreeMap<>();
        offsets.forEach((tp, offset) -> out.put(tp.partition(), offset.offset()));
        return out;
    }

    String scenarioOffsets() throws Exception {
        String input = name("offsets", "in");
        String output = name("offsets", "out");
        String group = name("offsets", "group");
        int partitions = 2;
        createTopics(partitions, input, output);
        producePlain(input, txnRecords("in", 20, partitions));
        Map<Integer, Long> afterCommit;
        Map<Integer, Long> abortedOffsets;
        List<ConsumerRecord<String, String>> first;
        try (KafkaProducer<String, String> producer = txnProducer(name("offsets", "txn"));
                KafkaConsumer<String, String> consumer = groupConsumer(group, input, 5)) {
            // 15+ of 2 x 10 records: the batch spans both partitions.
            first = pollAtLeast(consumer, 15);
            afterCommit = plain(transactBatch(producer, consumer, first, output));
            check(afterCommit.size() == partitions, first.size() + " records from one partition: " + afterCommit);
            producer.commitTransaction();
            awaitGroupOffsets(group, afterCommit, "after the commit");
            Map<Integer, Long> positions = new TreeMap<>();
            for (int p = 0; p < partitions; p++) {
                positions.put(p, consumer.position(new TopicPartition(input, p), Duration.ofSeconds(TIMEOUT_S)));
            }
            check(positions.equals(afterCommit), "committed " + afterCommit + " but the position is " + positions);
            List<ConsumerRecord<String, String>> second = pollBatch(consumer);
            abortedOffsets = plain(transactBatch(producer, consumer, second, output));
            producer.abortTransaction();
            awaitGroupOffsets(group, afterCommit, "after the abort of " + abortedOffsets);
        }
        seal(output, partitions, "end-1");
        List<Rec> expected = new ArrayList<>();
        for (ConsumerRecord<String, String> record : first) {
            expected.add(new Rec(record.partition(), transform(record.value())));
        }
        try (Reader reader = new Reader(output, partitions, "read_committed")) {
            expectValues(reader.untilMark("end-1"), byPartition(expected, partitions), "read_committed output");
        }
        // The output was read after the abort's markers: the offsets must
        // still be the committed transaction's.
        Map<Integer, Long> atEnd = groupOffsets(group);
        check(atEnd.equals(afterCommit), "at the end: committed " + atEnd + ", expected " + afterCommit);
        return "committed " + afterCommit + " after the commit (" + first.size()
                + " records), unchanged after the abort";
    }

    /** ProducerFencedException or InvalidProducerEpochException in the cause chain, or null. */
    static Throwable fencingCause(Throwable error) {
        for (Throwable e = error; e != null; e = e.getCause()) {
            if (e instanceof ProducerFencedException || e instanceof InvalidProducerEpochException) {
                return e;
            }
        }
        return null;
    }

    String scenarioFencing() throws Exception {
        String topic = name("fencing", "out");
        String transactionalId = name("fencing", "txn");
        int partitions = 2;
        createTopics(partitions, topic);
        List<Rec> records = txnRecords("successor", 4, partitions);
        Throwable fenced = null;
        KafkaProducer<String, String> zombie = txnProducer(transactionalId);
        try {
            zombie.beginTransaction();
            awaitSends(zombie, topic, txnRecords("zombie", 4, partitions), "zombie");
            try (KafkaProducer<String, String> successor = txnProducer(transactionalId)) {
                // The late send may fail (the partition sees an old epoch)
                // or not (the client has not heard yet); the commit must.
                List<Exception> failures = new ArrayList<>();
                try {
                    Future<RecordMetadata> late = zombie.send(new ProducerRecord<>(topic, 0, null, "zombie-late"));
                    zombie.flush();
                    try {
                        late.get(TIMEOUT_S, TimeUnit.SECONDS);
                    } catch (java.util.concurrent.ExecutionException e) {
                        failures.add(e);
                    }
                    zombie.commitTransaction();
                } catch (KafkaException e) {
                    failures.add(e);
                }
                check(!failures.isEmpty(), "the zombie's commit succeeded after another producer took its "
                        + "transactional.id");
                fenced = failures.stream().map(JavaTxn::fencingCause).filter(e -> e != null).findFirst()
                        .orElse(null);
                check(fenced != null, "the zombie failed, but not with a fencing error: " + failures);
                successor.beginTransaction();
                awaitSends(successor, topic, records, "successor");
                successor.commitTransaction();
            }
        } finally {
            zombie.close(Duration.ofSeconds(5));
        }
        seal(topic, partitions, "end-1");
        try (Reader reader = new Reader(topic, partitions, "read_committed")) {
            expectValues(reader.untilMark("end-1"), byPartition(records, partitions),
                    "read_committed (the zombie's transaction must be aborted)");
        }
        return "zombie fenced (" + fenced.getClass().getSimpleName() + "), its transaction aborted";
    }

    /**
     * After an abort: seeks every assigned partition to its committed
     * offset (consumer.committed asks for stable offsets), which must be
     * what the last commit left.
     */
    static void rewind(KafkaConsumer<String, String> consumer, Map<Integer, Long> expected) throws Exception {
        Set<TopicPartition> assignment = consumer.assignment();
        long deadline = System.currentTimeMillis() + COMMITTED_WAIT_MS;
        Map<TopicPartition, OffsetAndMetadata> committed;
        while (true) {
            committed = consumer.committed(assignment, Duration.ofSeconds(TIMEOUT_S));
            Map<Integer, Long> got = new TreeMap<>();
            committed.forEach((tp, offset) -> {
                if (offset != null) {
                    got.put(tp.partition(), offset.offset());
                }
            });
            if (got.equals(expected)) {
                break;
            }
            check(System.currentTimeMillis() < deadline,
                    "after an abort: committed " + got + ", the last commit left " + expected);
            Thread.sleep(100);
        }
        List<TopicPartition> never = new ArrayList<>();
        for (TopicPartition tp : assignment) {
            OffsetAndMetadata offset = committed.get(tp);
            if (offset == null) {
                never.add(tp);
            } else {
                consumer.seek(tp, offset.offset());
            }
        }
        // An empty list would mean every assigned partition.
        if (!never.isEmpty()) {
            consumer.seekToBeginning(never);
        }
    }

    String scenarioCtp() throws Exception {
        int count = Integer.parseInt(System.getenv().getOrDefault("TXN_COUNT", "100000"));
        long seed = System.getenv("TXN_SEED") != null ? Long.parseLong(System.getenv("TXN_SEED"))
                : new Random().nextInt() & 0xffffffffL;
        Random rng = new Random(seed);
        String input = name("ctp", "in");
        String output = name("ctp", "out");
        String group = name("ctp", "group");
        int partitions = 3;
        createTopics(partitions, input, output);
        List<Rec> inputs = txnRecords("in", count, partitions);
        producePlain(input, inputs);
        Map<Integer, Long> committed = new TreeMap<>();
        int commits = 0;
        int aborts = 0;
        double abortRatio = Double.parseDouble(System.getenv().getOrDefault("TXN_ABORT_RATIO",
                String.valueOf(CTP_ABORT_RATIO)));
        long started = System.currentTimeMillis();
        try (KafkaProducer<String, String> producer = txnProducer(name("ctp", "txn"));
                KafkaConsumer<String, String> consumer = groupConsumer(group, input, 500)) {
            while (committed.values().stream().mapToLong(Long::longValue).sum() < count) {
                check(System.currentTimeMillis() - started < CTP_DEADLINE_MS,
                        commits + " commits, " + aborts + " aborts, committed " + committed + " of " + count
                                + " after " + CTP_DEADLINE_MS + " ms");
                List<ConsumerRecord<String, String>> batch = pollBatch(consumer);
                Map<TopicPartition, OffsetAndMetadata> offsets = transactBatch(producer, consumer, batch, output);
                if (rng.nextDouble() < abortRatio) {
                    producer.abortTransaction();
                    aborts++;
                    rewind(consumer, committed);
                } else {
                    producer.commitTransaction();
                    commits++;
                    committed.putAll(plain(offsets));
                }
            }
        } catch (Fail e) {
            // Any failure of the loop names the seed, so that it replays.
            throw new Fail("seed " + seed + ": after " + commits + " commits and " + aborts + " aborts: "
                    + e.getMessage(), e.getCause() != null ? e.getCause() : e);
        } catch (KafkaException e) {
            throw new Fail("seed " + seed + ": after " + commits + " commits and " + aborts + " aborts: " + e, e);
        }
        double elapsedS = (System.currentTimeMillis() - started) / 1000.0;
        seal(output, partitions, "end-1");
        List<String> got = new ArrayList<>();
        try (Reader reader = new Reader(output, partitions, "read_committed")) {
            reader.untilMark("end-1").forEach(got::addAll);
        }
        List<String> expected = new ArrayList<>();
        inputs.forEach(rec -> expected.add(transform(rec.value())));
        Collections.sort(got);
        Collections.sort(expected);
        if (!got.equals(expected)) {
            Map<String, Integer> seen = new LinkedHashMap<>();
            got.forEach(value -> seen.merge(value, 1, Integer::sum));
            List<String> duplicated = new ArrayList<>();
            seen.forEach((value, n) -> {
                if (n > 1) {
                    duplicated.add(value);
                }
            });
            List<String> missing = new ArrayList<>(expected);
            missing.removeAll(seen.keySet());
            throw new Fail("seed " + seed + ": output holds " + got.size() + " records for " + count + " inputs: "
                    + duplicated.size() + " duplicated " + duplicated.subList(0, Math.min(3, duplicated.size()))
                    + ", " + missing.size() + " missing " + missing.subList(0, Math.min(3, missing.size())));
        }
        return String.format("%d records exactly once through %d commits and %d aborts in %.1f s (seed %d)", count,
                commits, aborts, elapsedS, seed);
    }

    interface Scenario {
        String run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: JavaTxn BOOTSTRAP RUN_ID [SCENARIO...]");
            System.exit(2);
        }
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]))) {
            JavaTxn txn = new JavaTxn(args[0], args[1], admin);
            Map<String, Scenario> scenarios = new LinkedHashMap<>();
            scenarios.put("commit", txn::scenarioCommit);
            scenarios.put("abort", txn::scenarioAbort);
            scenarios.put("open", txn::scenarioOpen);
            scenarios.put("offsets", txn::scenarioOffsets);
            scenarios.put("fencing", txn::scenarioFencing);
            scenarios.put("ctp", txn::scenarioCtp);
            String fromEnv = System.getenv().getOrDefault("TXN_SCENARIOS", "").trim();
            List<String> names = args.length > 2 ? List.of(args).subList(2, args.length)
                    : !fromEnv.isEmpty() ? List.of(fromEnv.split("\\s+"))
                    : new ArrayList<>(scenarios.keySet());
            for (String name : names) {
                if (!scenarios.containsKey(name)) {
                    System.err.println("unknown scenario " + name + "; known: " + scenarios.keySet());
                    System.exit(2);
                }
            }
            System.exit(runAll(scenarios, names) ? 0 : 1);
        }
    }

    private static boolean runAll(Map<String, Scenario> scenarios, List<String> names) {
        List<String> passed = new ArrayList<>();
        List<String> failed = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            long started = System.currentTimeMillis();
            try {
                String detail = scenarios.get(name).run();
                passed.add(name);
                System.out.printf("txn %s %s: OK %s (%.1f s)%n", CLIENT, name, detail,
                        (System.currentTimeMillis() - started) / 1000.0);
            } catch (NoTransactions e) {
                failed.add(name);
                System.out.println("txn " + CLIENT + " " + name + ": FAIL " + e.getMessage());
                List<String> skipped = names.subList(i + 1, names.size());
                if (!skipped.isEmpty()) {
                    System.out.println("txn " + CLIENT + ": skipping " + String.join(" ", skipped)
                            + ": the broker does not serve transactions");
                }
                break;
            } catch (Fail e) {
                failed.add(name);
                System.out.println("txn " + CLIENT + " " + name + ": FAIL " + e.getMessage());
            } catch (Exception e) {
                failed.add(name);
                StringWriter trace = new StringWriter();
                e.printStackTrace(new PrintWriter(trace));
                System.out.println("txn " + CLIENT + " " + name + ": FAIL " + e + "\n" + trace);
            }
            System.out.flush();
        }
        if (!failed.isEmpty() || passed.size() != names.size()) {
            System.out.println("txn " + CLIENT + ": FAIL (failed: " + String.join(" ", failed) + "; passed: "
                    + (passed.isEmpty() ? "none" : String.join(" ", passed)) + ")");
            return false;
        }
        System.out.println("txn " + CLIENT + ": PASS (" + String.join(" ", passed) + ")");
        return true;
    }
}
