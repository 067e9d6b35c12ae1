// The Java client (kafka-clients 3.9.1) against a 3-node rafka cluster
// (scripts/cluster.sh), in phases that java-cluster.sh runs around a broker
// kill and restart (the script owns the cluster; this program only talks to
// it). Every phase prints "ok: ..." lines for what it checked and exits 1
// with "problem: ..." lines on the first phase that fails.
//
//   setup    ONE ALL TOPIC GROUP_PREFIX COUNT
//            AdminClient.describeCluster through ALL: three nodes, the
//            controller one of them; createTopics (6 partitions) through ONE
//            broker alone; describeTopics: every partition led, the leaders
//            covering all three brokers; picks two groups, one coordinated
//            by the broker leading partition 0 (the one the script kills)
//            and one by another broker; a KafkaProducer (idempotence and
//            acks=all, its defaults) with ALL sends COUNT keyed records,
//            each acknowledged; a KafkaConsumer per group (subscribe,
//            earliest, commitSync) reads exactly those records. Prints
//            "leader0=N" and "groups=A,B" for the script.
//   fenced   ALL TOPIC KILLED
//            polls (bounded) until describeCluster lists the two other
//            brokers only and describeTopics shows KILLED's partitions with
//            no leader (offline), the others still led.
//   resume   ALL TOPIC GROUPS COUNT
//            polls until all three brokers are back and every partition is
//            led; each group's committed offsets are still the end offsets
//            left by setup (COUNT records in all); COUNT new keyed records
//            produced; a new consumer in each group reads exactly those.
//            Then TOPIC-rf3 (3 partitions, replication factor 3, made by
//            setup and led by each partition's first replica): the kill
//            moved the killed broker's leaderships away; once the ISRs are
//            whole again, Admin.electLeaders(PREFERRED) for every
//            partition elects those (and only those) back, describeTopics
//            shows every partition led by its first replica, and the
//            idempotent producer writes COUNT records to it. Last,
//            Admin.alterPartitionReassignments moves TOPIC's partition 0
//            to another broker; once listPartitionReassignments is empty
//            and describeTopics shows it led there, a new group reads
//            every record of TOPIC.
//
// usage: java -cp ... JavaCluster PHASE ARGS...

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaCluster {
    private static final int PARTITIONS = 6;
    private static final Set<Integer> BROKERS = Set.of(1, 2, 3);
    /** Every wait (metadata to settle, records to arrive) is bounded by this. */
    private static final long DEADLINE_MS = 60_000;
    private static final long CALL_TIMEOUT_S = 30;
    /** Candidate group names tried to find one per wanted coordinator. */
    private static final int GROUP_CANDIDATES_MAX = 500;

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

    private static void ok(String what) {
        System.out.println("ok: " + what);
        System.out.flush();
    }

    private static Admin admin(String bootstrap) {
        return Admin.create(Map.of(
                AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                AdminClientConfig.CLIENT_ID_CONFIG, "rafka-cluster-admin",
                AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000",
                AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000"));
    }

    /** The broker ids describeCluster lists, and its controller's id. */
    private record Cluster(Set<Integer> nodes, int controller) {
    }

    private static Cluster describeCluster(Admin admin) throws Exception {
        DescribeClusterResult result = admin.describeCluster();
        Set<Integer> nodes = result.nodes().get(CALL_TIMEOUT_S, TimeUnit.SECONDS).stream()
                .map(Node::id).collect(Collectors.toCollection(TreeSet::new));
        Node controller = result.controller().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        return new Cluster(nodes, controller == null ? -1 : controller.id());
    }

    /** Partition -> leader id (-1 when offline), from describeTopics. */
    private static Map<Integer, Integer> leaders(Admin admin, String topic) throws Exception {
        TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
        Map<Integer, Integer> leaders = new TreeMap<>();
        for (TopicPartitionInfo partition : description.partitions()) {
            Node leader = partition.leader();
            leaders.put(partition.partition(), leader == null || leader.isEmpty() ? -1 : leader.id());
        }
        return leaders;
    }

    /** Partition -> "preferred" or "moved", "/isr=N", from describeTopics. */
    private static Map<Integer, String> preferredLeadership(Admin admin, String topic) throws Exception {
        TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(CALL_TIMEOUT_S, TimeUnit.SECONDS).get(topic);
        Map<Integer, String> seen = new TreeMap<>();
        for (TopicPartitionInfo partition : description.partitions()) {
            Node leader = partition.leader();
            boolean preferred = leader != null && !leader.isEmpty()
                    && leader.id() == partition.replicas().get(0).id();
            seen.put(partition.partition(), (preferred ? "preferred" : "moved") + "/isr=" + partition.isr().size());
        }
        return seen;
    }

    private interface Probe<T> {
        /** The value once the condition holds, else null; "last" says what was seen. */
        T attempt(StringBuilder last) throws Exception;
    }

    /** Retries the probe every 200 ms until it yields, or fails at the deadline. */
    private static <T> T await(String what, Probe<T> probe) throws Exception {
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        StringBuilder last = new StringBuilder();
        while (true) {
            last.setLength(0);
            T value;
            try {
                value = probe.attempt(last);
            } catch (Exception e) {
                last.append(e);
                value = null;
            }
            if (value != null) {
                return value;
            }
            check(System.currentTimeMillis() < deadline,
                    "no " + what + " within " + DEADLINE_MS + " ms; last seen: " + last);
            Thread.sleep(200);
        }
    }

    /** The id of the broker FindCoordinator names for the group. */
    private static int coordinator(Admin admin, String group) throws Exception {
        return admin.describeConsumerGroups(List.of(group)).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)
                .get(group).coordinator().id();
    }

    /** Record key -> value of one round; keys and values name the round. */
    private static Map<String, String> records(int round, int count) {
        Map<String, String> records = new TreeMap<>();
        for (int i = 0; i < count; i++) {
            records.put("key-" + round + "-" + i, "value-" + round + "-" + i + "-" + "x".repeat(i % 17));
        }
        return records;
    }

    /** Produces the records through every broker; partition -> records acknowledged. */
    private static Map<Integer, Integer> produce(String bootstrap, String topic, Map<String, String> records)
            throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "rafka-cluster-producer");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        // Kafka 3.x's defaults, spelled out: this run means to exercise them.
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        Map<Integer, Integer> perPartition = new TreeMap<>();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(config, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> sends = new ArrayList<>();
            for (Map.Entry<String, String> record : records.entrySet()) {
                sends.add(producer.send(new ProducerRecord<>(topic, record.getKey(), record.getValue())));
            }
            producer.flush();
            for (Future<RecordMetadata> send : sends) {
                RecordMetadata metadata = send.get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                check(metadata.hasOffset(), "a record acknowledged without an offset");
                perPartition.merge(metadata.partition(), 1, Integer::sum);
            }
        }
        return perPartition;
    }

    /**
     * A new group member reads until it holds exactly the expected records and
     * its position is the end of every partition, committing synchronously.
     */
    private static void consume(String bootstrap, String topic, String group, Map<String, String> expected)
            throws Exception {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "rafka-cluster-" + group);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        Map<String, String> seen = new HashMap<>();
        List<String> problems = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(config, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            List<TopicPartition> partitions = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                partitions.add(new TopicPartition(topic, p));
            }
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (true) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    String before = seen.put(record.key(), record.value());
                    if (before != null) {
                        problems.add("key " + record.key() + " read twice");
                    }
                    if (!record.value().equals(expected.get(record.key()))) {
                        problems.add("unexpected record " + record.key() + "=" + record.value()
                                + " at " + record.partition() + "/" + record.offset());
                    }
                }
                consumer.commitSync();
                check(problems.isEmpty(), group + ": " + problems.stream().limit(5).toList());
                if (seen.size() >= expected.size() && consumer.assignment().size() == PARTITIONS) {
                    Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
                    boolean atEnd = true;
                    for (TopicPartition partition : partitions) {
                        atEnd &= consumer.position(partition, Duration.ofSeconds(30)) == ends.get(partition);
                    }
                    if (atEnd) {
                        break;
                    }
                }
                check(System.currentTimeMillis() < deadline, group + ": read " + seen.size() + " of "
                        + expected.size() + " records within " + DEADLINE_MS + " ms");
            }
        }
        check(seen.equals(expected), group + ": read " + seen.size() + " records, not the "
                + expected.size() + " produced");
    }

    /** The group's committed offsets, partition -> offset. */
    private static Map<Integer, Long> committed(Admin admin, String topic, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        Map<Integer, Long> byPartition = new TreeMap<>();
        offsets.forEach((tp, offset) -> {
            if (tp.topic().equals(topic) && offset != null) {
                byPartition.put(tp.partition(), offset.offset());
            }
        });
        return byPartition;
    }

    private static Map<Integer, Long> endOffsets(Admin admin, String topic) throws Exception {
        Map<TopicPartition, OffsetSpec> request = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            request.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        Map<Integer, Long> ends = new TreeMap<>();
        admin.listOffsets(request).all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS)
                .forEach((tp, info) -> ends.put(tp.partition(), info.offset()));
        return ends;
    }

    /** The first candidate group whose coordinator is (or is not) the broker. */
    private static String groupCoordinatedBy(Admin admin, String prefix, int broker, boolean on)
            throws Exception {
        for (int i = 0; i < GROUP_CANDIDATES_MAX; i++) {
            String group = prefix + "-" + i;
            int coordinator = coordinator(admin, group);
            check(BROKERS.contains(coordinator), "FindCoordinator(" + group + ") named broker " + coordinator);
            if ((coordinator == broker) == on) {
                return group;
            }
        }
        throw new Failure("no group among " + GROUP_CANDIDATES_MAX + " candidates coordinated "
                + (on ? "by" : "outside") + " broker " + broker);
    }

    private static void setup(String one, String all, String topic, String groupPrefix, int count)
            throws Exception {
        try (Admin admin = admin(all)) {
            Cluster cluster = describeCluster(admin);
            check(cluster.nodes().equals(BROKERS), "describeCluster nodes " + cluster.nodes());
            check(BROKERS.contains(cluster.controller()), "describeCluster controller " + cluster.controller());
            ok("describeCluster: nodes " + cluster.nodes() + ", controller " + cluster.controller());
        }
        try (Admin admin = admin(one)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all()
                    .get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
            ok("createTopics " + topic + " (" + PARTITIONS + " partitions) through " + one + " alone");
            admin.createTopics(List.of(new NewTopic(topic + "-rf3", 3, (short) 3))).all()
                    .get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        }
        try (Admin admin = admin(all)) {
            Map<Integer, String> led = await(topic + "-rf3 led by each first replica", last -> {
                Map<Integer, String> seen = preferredLeadership(admin, topic + "-rf3");
                last.append(seen);
                return seen.values().stream().allMatch(v -> v.startsWith("preferred")) ? seen : null;
            });
            ok("createTopics " + topic + "-rf3 (replication factor 3): " + led);
        }
        try (Admin admin = admin(all)) {
            Map<Integer, Integer> leaders = await("every partition led by the three brokers", last -> {
                Map<Integer, Integer> seen = leaders(admin, topic);
                last.append(seen);
                boolean covered = seen.size() == PARTITIONS && Set.copyOf(seen.values()).equals(BROKERS);
                return covered ? seen : null;
            });
            ok("describeTopics leaders " + leaders);
            int leader0 = leaders.get(0);
            String onKilled = groupCoordinatedBy(admin, groupPrefix + "-k", leader0, true);
            String elsewhere = groupCoordinatedBy(admin, groupPrefix + "-o", leader0, false);
            int otherCoordinator = coordinator(admin, elsewhere);
            ok("group " + onKilled + " coordinated by broker " + coordinator(admin, onKilled)
                    + ", group " + elsewhere + " by broker " + otherCoordinator);

            Map<String, String> round = records(1, count);
            Map<Integer, Integer> perPartition = produce(all, topic, round);
            check(perPartition.keySet().size() == PARTITIONS,
                    "records acknowledged on partitions " + perPartition.keySet() + " only");
            ok("produced " + count + " keyed records, all acknowledged, per partition " + perPartition);
            Map<Integer, Long> ends = endOffsets(admin, topic);
            for (String group : List.of(onKilled, elsewhere)) {
                consume(all, topic, group, round);
                Map<Integer, Long> offsets = committed(admin, topic, group);
                check(offsets.equals(ends), group + ": committed " + offsets + ", end offsets " + ends);
                ok("group " + group + " read exactly the " + count + " records, committed " + offsets);
            }
            System.out.println("leader0=" + leader0);
            System.out.println("groups=" + onKilled + "," + elsewhere);
            System.out.println("coordinators=" + leader0 + "," + otherCoordinator);
        }
    }

    private static void fenced(String all, String topic, int killed) throws Exception {
        Set<Integer> survivors = new TreeSet<>(BROKERS);
        survivors.remove(killed);
        try (Admin admin = admin(all)) {
            Cluster cluster = await("describeCluster without broker " + killed, last -> {
                Cluster seen = describeCluster(admin);
                last.append(seen);
                return seen.nodes().equals(survivors) && survivors.contains(seen.controller()) ? seen : null;
            });
            ok("describeCluster after the kill: nodes " + cluster.nodes() + ", controller " + cluster.controller());
            Map<Integer, Integer> leaders = await("broker " + killed + "'s partitions offline", last -> {
                Map<Integer, Integer> seen = leaders(admin, topic);
                last.append(seen);
                boolean offline = seen.get(0) == -1 && seen.values().stream()
                        .allMatch(leader -> leader == -1 || survivors.contains(leader));
                return offline ? seen : null;
            });
            check(leaders.values().stream().anyMatch(survivors::contains), "no partition led by a survivor");
            ok("describeTopics after the kill: " + leaders + " (-1: offline)");
        }
    }

    private static void resume(String all, String topic, List<String> groups, int count) throws Exception {
        try (Admin admin = admin(all)) {
            Cluster cluster = await("describeCluster with the three brokers", last -> {
                Cluster seen = describeCluster(admin);
                last.append(seen);
                return seen.nodes().equals(BROKERS) && BROKERS.contains(seen.controller()) ? seen : null;
            });
            ok("describeCluster after the restart: nodes " + cluster.nodes() + ", controller "
                    + cluster.controller());
            Map<Integer, Integer> leaders = await("every partition led again", last -> {
                Map<Integer, Integer> seen = leaders(admin, topic);
                last.append(seen);
                return seen.size() == PARTITIONS && Set.copyOf(seen.values()).equals(BROKERS) ? seen : null;
            });
            ok("describeTopics after the restart: " + leaders);
            Map<Integer, Long> ends = endOffsets(admin, topic);
            check(ends.values().stream().mapToLong(Long::longValue).sum() == count,
                    "end offsets " + ends + " after the restart do not add up to " + count);
            for (String group : groups) {
                Map<Integer, Long> offsets = await("group " + group + "'s committed offsets", last -> {
                    Map<Integer, Long> seen = committed(admin, topic, group);
                    last.append(seen);
                    return seen.equals(ends) ? seen : null;
                });
                ok("group " + group + " (coordinator broker " + coordinator(admin, group)
                        + ") kept its committed offsets " + offsets);
            }
            Map<String, String> round = records(2, count);
            Map<Integer, Integer> perPartition = produce(all, topic, round);
            ok("produced " + count + " more keyed records, all acknowledged, per partition " + perPartition);
            Map<Integer, Long> newEnds = endOffsets(admin, topic);
            for (String group : groups) {
                consume(all, topic, group, round);
                Map<Integer, Long> offsets = committed(admin, topic, group);
                check(offsets.equals(newEnds), group + ": committed " + offsets + ", end offsets " + newEnds);
                ok("a new member of " + group + " read exactly the " + count + " new records");
            }
            String replicated = topic + "-rf3";
            Map<Integer, String> before = await(replicated + "'s ISRs whole again", last -> {
                Map<Integer, String> seen = preferredLeadership(admin, replicated);
                last.append(seen);
                return seen.values().stream().allMatch(v -> v.endsWith("/isr=3")) ? seen : null;
            });
            Set<TopicPartition> moved = new TreeSet<>(java.util.Comparator.comparingInt(TopicPartition::partition));
            before.forEach((partition, state) -> {
                if (state.startsWith("moved")) {
                    moved.add(new TopicPartition(replicated, partition));
                }
            });
            check(!moved.isEmpty(), replicated + ": the kill moved no leadership: " + before);
            Map<TopicPartition, java.util.Optional<Throwable>> elected = admin
                    .electLeaders(org.apache.kafka.common.ElectionType.PREFERRED, null)
                    .partitions().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
            Map<TopicPartition, java.util.Optional<Throwable>> ours = new TreeMap<>(
                    java.util.Comparator.comparing(TopicPartition::toString));
            elected.forEach((tp, outcome) -> {
                if (tp.topic().equals(replicated)) {
                    ours.put(tp, outcome);
                }
            });
            check(ours.keySet().equals(moved), "electLeaders(PREFERRED) answered " + ours + ", moved " + moved);
            check(ours.values().stream().allMatch(java.util.Optional::isEmpty), "electLeaders failed: " + ours);
            Map<Integer, String> after = await(replicated + " led by each first replica again", last -> {
                Map<Integer, String> seen = preferredLeadership(admin, replicated);
                last.append(seen);
                return seen.values().stream().allMatch(v -> v.equals("preferred/isr=3")) ? seen : null;
            });
            ok("electLeaders(PREFERRED) moved " + moved + " back: " + before + " -> " + after);
            Map<Integer, Integer> written = produce(all, replicated, records(3, count));
            ok("produced " + count + " keyed records to " + replicated + ", all acknowledged, per partition "
                    + written);

            TopicPartition zero = new TopicPartition(topic, 0);
            int from = leaders(admin, topic).get(0);
            int to = BROKERS.stream().filter(b -> b != from).min(Integer::compare).orElseThrow();
            admin.alterPartitionReassignments(Map.of(zero,
                    java.util.Optional.of(new NewPartitionReassignment(List.of(to)))))
                    .all().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
            Map<Integer, Integer> moved0 = await(zero + " moved from broker " + from + " to " + to, last -> {
                Map<TopicPartition, PartitionReassignment> moving = admin.listPartitionReassignments()
                        .reassignments().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                Map<Integer, Integer> seen = leaders(admin, topic);
                last.append(moving).append(' ').append(seen);
                return moving.isEmpty() && seen.get(0) == to ? seen : null;
            });
            Map<String, String> everything = new TreeMap<>(records(1, count));
            everything.putAll(round);
            consume(all, topic, "moved-" + topic, everything);
            ok("alterPartitionReassignments moved " + zero + " from broker " + from + " to " + to
                    + " (leaders now " + moved0 + "); a new group read all " + everything.size() + " records");
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            switch (args.length > 0 ? args[0] : "") {
                case "setup" -> setup(args[1], args[2], args[3], args[4], Integer.parseInt(args[5]));
                case "fenced" -> fenced(args[1], args[2], Integer.parseInt(args[3]));
                case "resume" -> resume(args[1], args[2], List.of(args[3].split(",")), Integer.parseInt(args[4]));
                default -> throw new Failure("usage: JavaCluster setup|fenced|resume ARGS...");
            }
        } catch (Failure e) {
            System.out.println("problem: " + e.getMessage());
            System.exit(1);
        }
        System.exit(0);
    }
}
