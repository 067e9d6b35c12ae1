// The Java AdminClient (kafka-clients 3.9.1) against a running broker, each
// call checked by its effect: createTopics (with a config override),
// describeTopics (partition count, leader 0, non-zero topic id),
// createPartitions (grow; a decrease is InvalidPartitionsException),
// deleteRecords (low watermark, then listOffsets earliest), describeConfigs
// (the topic: override and default with their sources; broker 0),
// incrementalAlterConfigs (SET, DELETE, APPEND; an invalid value is
// InvalidConfigurationException; validateOnly changes nothing; a cluster-wide
// broker default seen by the topic, with its synonyms, removed again), the
// legacy alterConfigs (replaces every override), describeCluster, and
// deleteTopics and describeLogDirs (JAVA_ADMIN_LOG_DIRS=0 skips it);
// alterUserScramCredentials / describeUserScramCredentials (create, a second
// mechanism, describe one and all, UnacceptableCredentialException, delete,
// ResourceNotFoundException); alterClientQuotas / describeClientQuotas
// (producer_byte_rate for client id quota-client and a default-user
// consumer_byte_rate, described back through exact, default, any and
// containsOnly filters; validateOnly writes nothing; a negative value is
// InvalidRequestException; removed, both describe empty).
// Prints one "admin java: PASS|FAIL ..." verdict line; exits 1 on the first
// mismatch.
//
// usage: java -cp ... JavaAdmin BOOTSTRAP TOPIC

import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.UnacceptableCredentialException;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaAdmin {
    private static final long TIMEOUT_S = 30;
    private static final long DEADLINE_MS = 30_000;

    /** A mismatch: its message is the FAIL line's. */
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

    public static void main(String[] args) {
        String bootstrap = args[0];
        String topic = args[1];
        boolean logDirs = !"0".equals(System.getenv("JAVA_ADMIN_LOG_DIRS"));
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "rafka-java-admin");
        config.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        try (Admin admin = Admin.create(config)) {
            run(admin, bootstrap, topic, logDirs);
        } catch (Mismatch mismatch) {
            System.out.println("admin java: FAIL " + mismatch.getMessage());
            System.exit(1);
        } catch (Exception error) {
            error.printStackTrace();
            System.out.println("admin java: FAIL " + error);
            System.exit(1);
        }
        System.out.println("admin java: PASS createTopics, describeTopics (3 partitions, leader 0, topic id), "
                + "createPartitions 3->5 (decrease refused), deleteRecords low watermark 4 of 10, "
                + "describeConfigs (topic override/default, broker 0), incrementalAlterConfigs (SET, DELETE, "
                + "APPEND, invalid value refused, validateOnly, cluster default with synonyms), legacy alterConfigs "
                + "replaces overrides, describeCluster, alterUserScramCredentials/describeUserScramCredentials "
                + "(create, second mechanism, describe one and all, UnacceptableCredentialException, delete, "
                + "ResourceNotFoundException), alterClientQuotas/describeClientQuotas (client-id and "
                + "default-user quotas, exact/default/any/containsOnly filters, validateOnly, "
                + "InvalidRequestException, removed), deleteTopics"
                + (logDirs ? ", describeLogDirs" : " (describeLogDirs skipped: JAVA_ADMIN_LOG_DIRS=0)"));
        System.exit(0);
    }

    private static void run(Admin admin, String bootstrap, String topic, boolean logDirs) throws Exception {
        // createTopics with an override, then describeTopics.
        NewTopic newTopic = new NewTopic(topic, 3, (short) 1).configs(Map.of("max.message.bytes", "2000000"));
        admin.createTopics(List.of(newTopic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        TopicDescription description = describeTopic(admin, topic);
        check(description.partitions().size() == 3,
                "describeTopics: " + description.partitions().size() + " partitions, expected 3");
        for (TopicPartitionInfo partition : description.partitions()) {
            check(partition.leader() != null && partition.leader().id() == 0,
                    "describeTopics: partition " + partition.partition() + " leader " + partition.leader());
            check(partition.replicas().size() == 1 && partition.isr().size() == 1,
                    "describeTopics: partition " + partition.partition() + " replicas " + partition.replicas()
                            + " isr " + partition.isr());
        }
        check(description.topicId() != null && !Uuid.ZERO_UUID.equals(description.topicId()),
                "describeTopics: topic id " + description.topicId());
        check(!description.isInternal(), "describeTopics: the topic is internal");

        // createPartitions: grow 3 -> 5, a decrease is refused.
        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        int partitions = describeTopic(admin, topic).partitions().size();
        check(partitions == 5, "createPartitions: " + partitions + " partitions after growing to 5");
        Throwable shrink = failure("createPartitions decrease to 2",
                () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all()
                        .get(TIMEOUT_S, TimeUnit.SECONDS));
        check(shrink instanceof InvalidPartitionsException,
                "createPartitions: a decrease to 2 was " + shrink + ", expected InvalidPartitionsException");

        // 10 records to the new partition 4, then deleteRecords before offset 4.
        TopicPartition p4 = new TopicPartition(topic, 4);
        produce(bootstrap, p4, 10);
        long low = admin.deleteRecords(Map.of(p4, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(p4)
                .get(TIMEOUT_S, TimeUnit.SECONDS).lowWatermark();
        check(low == 4, "deleteRecords: low watermark " + low + ", expected 4");
        long earliest = admin.listOffsets(Map.of(p4, OffsetSpec.earliest())).partitionResult(p4)
                .get(TIMEOUT_S, TimeUnit.SECONDS).offset();
        long latest = admin.listOffsets(Map.of(p4, OffsetSpec.latest())).partitionResult(p4)
                .get(TIMEOUT_S, TimeUnit.SECONDS).offset();
        check(earliest == 4 && latest == 10,
                "listOffsets after deleteRecords: earliest " + earliest + " latest " + latest + ", expected 4 and 10");

        checkConfigs(admin, topic);

        // describeCluster: one node, id 0, a cluster id.
        DescribeClusterResult cluster = admin.describeCluster();
        String clusterId = cluster.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS);
        Collection<Node> nodes = cluster.nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
        Node controller = cluster.controller().get(TIMEOUT_S, TimeUnit.SECONDS);
        check(clusterId != null && !clusterId.isEmpty(), "describeCluster: cluster id " + clusterId);
        check(nodes.size() == 1 && nodes.iterator().next().id() == 0, "describeCluster: nodes " + nodes);
        check(controller != null && controller.id() == 0, "describeCluster: controller " + controller);

        if (logDirs) {
            checkLogDirs(admin, topic);
        }

        checkScram(admin, topic);
        checkQuotas(admin);

        // deleteTopics: the topic leaves listTopics.
        admin.deleteTopics(List.of(topic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        while (admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS).contains(topic)) {
            check(System.currentTimeMillis() < deadline, "deleteTopics: the topic is still listed");
            Thread.sleep(100);
        }
    }

    private static void checkConfigs(Admin admin, String topic) throws Exception {
        ConfigResource topicResource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        ConfigResource broker0 = new ConfigResource(ConfigResource.Type.BROKER, "0");
        ConfigResource clusterDefault = new ConfigResource(ConfigResource.Type.BROKER, "");

        Config configs = describe(admin, topicResource);
        ConfigEntry entry = expect(configs, "max.message.bytes", "2000000",
                ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "topic override");
        check(!entry.isReadOnly() && !entry.isDefault(), "topic override: read-only or default: " + entry);
        entry = expect(configs, "segment.bytes", "1073741824", ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                "topic default");
        check(entry.isDefault(), "topic default: segment.bytes not isDefault");
        expect(configs, "retention.ms", "604800000", ConfigEntry.ConfigSource.DEFAULT_CONFIG, "topic default");

        Config broker = describe(admin, broker0);
        entry = expect(broker, "num.partitions", "1", ConfigEntry.ConfigSource.DEFAULT_CONFIG, "broker 0");
        check(entry.isReadOnly(), "broker 0: num.partitions not read-only");
        entry = expect(broker, "log.retention.ms", "604800000", ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                "broker 0");
        check(!entry.isReadOnly(), "broker 0: log.retention.ms (dynamic) reported read-only");

        // SET, then DELETE back to the default.
        alter(admin, topicResource, op("retention.ms", "3600000", AlterConfigOp.OpType.SET), false);
        expect(describe(admin, topicResource), "retention.ms", "3600000",
                ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "after SET");
        alter(admin, topicResource, op("retention.ms", null, AlterConfigOp.OpType.DELETE), false);
        configs = describe(admin, topicResource);
        expect(configs, "retention.ms", "604800000", ConfigEntry.ConfigSource.DEFAULT_CONFIG, "after DELETE");
        expect(configs, "max.message.bytes", "2000000", ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "after DELETE of another key");

        // APPEND to the list key cleanup.policy.
        alter(admin, topicResource, op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND), false);
        expect(describe(admin, topicResource), "cleanup.policy", "delete,compact",
                ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "after APPEND");

        // An invalid value, then validateOnly: neither changes anything.
        Throwable invalid = failure("SET retention.ms=soon",
                () -> alter(admin, topicResource, op("retention.ms", "soon", AlterConfigOp.OpType.SET), false));
        check(invalid instanceof InvalidConfigurationException,
                "SET retention.ms=soon was " + invalid + ", expected InvalidConfigurationException");
        alter(admin, topicResource, op("segment.ms", "60000", AlterConfigOp.OpType.SET), true);
        configs = describe(admin, topicResource);
        expect(configs, "retention.ms", "604800000", ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                "after an invalid SET");
        expect(configs, "segment.ms", "604800000", ConfigEntry.ConfigSource.DEFAULT_CONFIG, "after validateOnly");

        // A cluster-wide dynamic broker default, seen by the topic, then
        // removed so that later runs on this broker see the defaults.
        try {
            alter(admin, clusterDefault, op("log.retention.ms", "7200000", AlterConfigOp.OpType.SET), false);
            expect(describe(admin, topicResource), "retention.ms", "7200000",
                    ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, "after the cluster default");
            expect(describe(admin, clusterDefault), "log.retention.ms", "7200000",
                    ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, "the cluster default resource");
            // With synonyms: the layers the value was chosen among, highest first.
            Config withSynonyms = admin.describeConfigs(List.of(topicResource),
                    new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS).get(topicResource);
            ConfigEntry retention = withSynonyms.get("retention.ms");
            List<String> synonyms = retention.synonyms().stream()
                    .map(s -> s.name() + "=" + s.value() + " " + s.source()).toList();
            check(synonyms.equals(List.of("log.retention.ms=7200000 DYNAMIC_DEFAULT_BROKER_CONFIG",
                    "log.retention.hours=168 DEFAULT_CONFIG")),
                    "describeConfigs includeSynonyms: retention.ms synonyms " + synonyms);
            check(retention.type() == ConfigEntry.ConfigType.LONG && retention.documentation() != null,
                    "describeConfigs includeDocumentation: retention.ms type " + retention.type()
                            + " documentation " + retention.documentation());
        } finally {
            alter(admin, clusterDefault, op("log.retention.ms", null, AlterConfigOp.OpType.DELETE), false);
        }
        expect(describe(admin, topicResource), "retention.ms", "604800000",
                ConfigEntry.ConfigSource.DEFAULT_CONFIG, "after removing the cluster default");

        // The legacy alterConfigs (AlterConfigs) replaces every override of
        // the topic (max.message.bytes, cleanup.policy) with the given ones.
        alterLegacy(admin, topicResource, new Config(List.of(new ConfigEntry("segment.ms", "600000"))));
        Map<String, String> overrides = new TreeMap<>();
        for (ConfigEntry e : describe(admin, topicResource).entries()) {
            if (e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                overrides.put(e.name(), e.value());
            }
        }
        check(overrides.equals(Map.of("segment.ms", "600000")),
                "legacy alterConfigs: overrides " + overrides + ", expected only segment.ms=600000");
    }

    @SuppressWarnings("deprecation")
    private static void alterLegacy(Admin admin, ConfigResource resource, Config config) throws Exception {
        admin.alterConfigs(Map.of(resource, config)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** describeLogDirs of broker 0: one log dir holding the topic's 5 partitions, partition 4 non-empty. */
    private static void checkLogDirs(Admin admin, String topic) throws Exception {
        Map<Integer, Map<String, LogDirDescription>> all = admin.describeLogDirs(List.of(0)).allDescriptions()
                .get(TIMEOUT_S, TimeUnit.SECONDS);
        check(all.keySet().equals(Set.of(0)), "describeLogDirs: brokers " + all.keySet());
        Map<String, LogDirDescription> dirs = all.get(0);
        check(dirs.size() == 1, "describeLogDirs: " + dirs.size() + " log dirs, expected 1: " + dirs.keySet());
        LogDirDescription dir = dirs.values().iterator().next();
        check(dir.error() == null, "describeLogDirs: log dir error " + dir.error());
        for (int partition = 0; partition < 5; partition++) {
            ReplicaInfo replica = dir.replicaInfos().get(new TopicPartition(topic, partition));
            check(replica != null, "describeLogDirs: partition " + partition + " missing");
            check(!replica.isFuture(), "describeLogDirs: partition " + partition + " is a future replica");
        }
        long size = dir.replicaInfos().get(new TopicPartition(topic, 4)).size();
        check(size > 0, "describeLogDirs: partition 4 size " + size + " after 10 records");
    }

    /** Users' SCRAM credentials: the client salts, the broker keeps keys. */
    private static void checkScram(Admin admin, String topic) throws Exception {
        String user = "scram-" + topic;
        String other = user + "-b";
        admin.alterUserScramCredentials(List.of(
                new UserScramCredentialUpsertion(user,
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), "java-secret"),
                new UserScramCredentialUpsertion(other,
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), "other")))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<String, UserScramCredentialsDescription> named = admin
                .describeUserScramCredentials(List.of(user, other)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        check(infos(named.get(user)).equals("SCRAM_SHA_256:8192"),
                "describeUserScramCredentials " + user + ": " + infos(named.get(user)));
        check(infos(named.get(other)).equals("SCRAM_SHA_512:4096"),
                "describeUserScramCredentials " + other + ": " + infos(named.get(other)));
        admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(user,
                new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 16384), "second")))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<String, UserScramCredentialsDescription> everyone = admin.describeUserScramCredentials()
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        check(infos(everyone.get(user)).equals("SCRAM_SHA_256:8192,SCRAM_SHA_512:16384"),
                "describeUserScramCredentials (all): " + user + " " + infos(everyone.get(user)));
        Throwable few = failure("alterUserScramCredentials with 1000 iterations",
                () -> admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(other,
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), "x")))
                        .all().get(TIMEOUT_S, TimeUnit.SECONDS));
        check(few instanceof UnacceptableCredentialException,
                "1000 iterations: " + few + ", expected UnacceptableCredentialException");
        admin.alterUserScramCredentials(List.of(
                new UserScramCredentialDeletion(other, ScramMechanism.SCRAM_SHA_512)))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Throwable missing = failure("deleting a deleted credential",
                () -> admin.alterUserScramCredentials(List.of(
                        new UserScramCredentialDeletion(other, ScramMechanism.SCRAM_SHA_512)))
                        .all().get(TIMEOUT_S, TimeUnit.SECONDS));
        check(missing instanceof ResourceNotFoundException,
                "deleting a deleted credential: " + missing + ", expected ResourceNotFoundException");
        Throwable gone = failure("describing a user without credentials",
                () -> admin.describeUserScramCredentials(List.of(other)).description(other)
                        .get(TIMEOUT_S, TimeUnit.SECONDS));
        check(gone instanceof ResourceNotFoundException,
                "describing a deleted user: " + gone + ", expected ResourceNotFoundException");
    }

    /**
     * Client quotas: set for a client id and the default user, described back
     * through each kind of filter, then removed. Only entities this run
     * touches are compared exactly, so other runs' quotas cannot fail it.
     */
    private static void checkQuotas(Admin admin) throws Exception {
        Map<String, String> clientNames = new java.util.HashMap<>();
        clientNames.put(ClientQuotaEntity.CLIENT_ID, "quota-client");
        ClientQuotaEntity client = new ClientQuotaEntity(clientNames);
        Map<String, String> defaultUserNames = new java.util.HashMap<>();
        defaultUserNames.put(ClientQuotaEntity.USER, null);
        ClientQuotaEntity defaultUser = new ClientQuotaEntity(defaultUserNames);
        Map<String, Double> clientQuota = Map.of("producer_byte_rate", 1048576.0);
        Map<String, Double> defaultUserQuota = Map.of("consumer_byte_rate", 104857600.0);
        List<ClientQuotaAlteration> set = List.of(
                new ClientQuotaAlteration(client,
                        List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1048576.0))),
                new ClientQuotaAlteration(defaultUser,
                        List.of(new ClientQuotaAlteration.Op("consumer_byte_rate", 104857600.0))));
        ClientQuotaFilter exactClient = ClientQuotaFilter.containsOnly(
                List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, "quota-client")));
        ClientQuotaFilter onlyDefaultUser = ClientQuotaFilter.containsOnly(
                List.of(ClientQuotaFilterComponent.ofDefaultEntity(ClientQuotaEntity.USER)));

        // validateOnly: accepted, nothing written.
        admin.alterClientQuotas(set, new AlterClientQuotasOptions().validateOnly(true))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<ClientQuotaEntity, Map<String, Double>> none = quotas(admin, exactClient);
        check(none.isEmpty(), "describeClientQuotas after validateOnly: " + none);

        admin.alterClientQuotas(set).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<ClientQuotaEntity, Map<String, Double>> byClient = quotas(admin, exactClient);
        check(byClient.equals(Map.of(client, clientQuota)), "describeClientQuotas quota-client: " + byClient);
        Map<ClientQuotaEntity, Map<String, Double>> byDefault = quotas(admin, onlyDefaultUser);
        check(byDefault.equals(Map.of(defaultUser, defaultUserQuota)),
                "describeClientQuotas default user: " + byDefault);
        // Any client id (not strict) and every quota include the client's.
        Map<ClientQuotaEntity, Map<String, Double>> anyClient = quotas(admin, ClientQuotaFilter.contains(
                List.of(ClientQuotaFilterComponent.ofEntityType(ClientQuotaEntity.CLIENT_ID))));
        check(clientQuota.equals(anyClient.get(client)) && !anyClient.containsKey(defaultUser),
                "describeClientQuotas any client id: " + anyClient);
        Map<ClientQuotaEntity, Map<String, Double>> all = quotas(admin, ClientQuotaFilter.all());
        check(clientQuota.equals(all.get(client)) && defaultUserQuota.equals(all.get(defaultUser)),
                "describeClientQuotas all: " + all);

        Throwable negative = failure("alterClientQuotas with a negative rate",
                () -> admin.alterClientQuotas(List.of(new ClientQuotaAlteration(client,
                        List.of(new ClientQuotaAlteration.Op("producer_byte_rate", -1.0)))))
                        .all().get(TIMEOUT_S, TimeUnit.SECONDS));
        check(negative instanceof InvalidRequestException
                        && "Quota producer_byte_rate must be greater than 0".equals(negative.getMessage()),
                "negative producer_byte_rate: " + negative + ", expected InvalidRequestException");

        // A null value removes the key.
        admin.alterClientQuotas(List.of(
                new ClientQuotaAlteration(client, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", null))),
                new ClientQuotaAlteration(defaultUser,
                        List.of(new ClientQuotaAlteration.Op("consumer_byte_rate", null)))))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<ClientQuotaEntity, Map<String, Double>> gone = quotas(admin, exactClient);
        check(gone.isEmpty(), "describeClientQuotas quota-client after removal: " + gone);
        gone = quotas(admin, onlyDefaultUser);
        check(gone.isEmpty(), "describeClientQuotas default user after removal: " + gone);
    }

    private static Map<ClientQuotaEntity, Map<String, Double>> quotas(Admin admin, ClientQuotaFilter filter)
            throws Exception {
        return admin.describeClientQuotas(filter).entities().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** `MECHANISM:ITERATIONS,...` in mechanism order. */
    private static String infos(UserScramCredentialsDescription description) {
        if (description == null) {
            return "<missing>";
        }
        return description.credentialInfos().stream()
                .map(i -> i.mechanism() + ":" + i.iterations())
                .sorted()
                .collect(java.util.stream.Collectors.joining(","));
    }

    private static TopicDescription describeTopic(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
    }

    private static Config describe(Admin admin, ConfigResource resource) throws Exception {
        return admin.describeConfigs(List.of(resource)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(resource);
    }

    private static ConfigEntry expect(Config configs, String name, String value, ConfigEntry.ConfigSource source,
            String what) {
        ConfigEntry entry = configs.get(name);
        check(entry != null, what + ": " + name + " missing (" + configs.entries().size() + " entries)");
        check(value.equals(entry.value()) && entry.source() == source,
                what + ": " + name + "=" + entry.value() + " (" + entry.source() + "), expected " + value + " ("
                        + source + ")");
        return entry;
    }

    private static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
        return new AlterConfigOp(new ConfigEntry(name, value), type);
    }

    private static void alter(Admin admin, ConfigResource resource, AlterConfigOp op, boolean validateOnly)
            throws Exception {
        admin.incrementalAlterConfigs(Map.of(resource, List.of(op)),
                new AlterConfigsOptions().validateOnly(validateOnly)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    private interface Call {
        void run() throws Exception;
    }

    /** The cause of the call's failure; a Mismatch if it succeeded. */
    private static Throwable failure(String what, Call call) throws Exception {
        try {
            call.run();
        } catch (ExecutionException error) {
            return error.getCause();
        }
        throw new Mismatch(what + " succeeded");
    }

    private static void produce(String bootstrap, TopicPartition partition, int count) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < count; i++) {
                byte[] value = ("v" + i).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(partition.topic(), partition.partition(), null, value))
                        .get(TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
    }
}
