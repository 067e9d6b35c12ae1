// The SASL matrix's cells for the Java client, in one JVM. Each CELL is
// LISTENER:MECHANISM:KIND and prints one line
// "java LISTENER MECHANISM KIND: OK|FAIL reason":
// - roundtrip (and roundtrip-after-refusals, the last cell): produces COUNT
//   records to partition 0 of a topic of its own (auto-created), reads them
//   back from offset 0 (assign + seek, no group) and compares them. OAUTHBEARER logs in with Kafka's default
//   OAuthBearerUnsecuredLoginCallbackHandler (unsecuredLoginStringClaim_sub).
// - wrong-password: PLAIN/SCRAM with a wrong password; expects
//   SaslAuthenticationException.
// - expired-token: OAUTHBEARER with an unsecured JWT whose exp is an hour
//   past, from ExpiredToken (the default handler refuses to mint one);
//   expects SaslAuthenticationException.
// - wrong-ca: SASL_SSL while trusting OTHER_CA; expects
//   SslAuthenticationException.
//
// usage: java SaslJava SASL_PLAINTEXT_ADDR SASL_SSL_ADDR CA OTHER_CA USER PASSWORD RUN_ID CELL...
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SaslJava {
    static final int COUNT = 20;
    static final long DEADLINE_MS = 30_000;

    public static void main(String[] args) throws Exception {
        String plaintext = args[0], ssl = args[1], ca = args[2], otherCa = args[3];
        String user = args[4], password = args[5], runId = args[6];
        boolean failed = false;
        for (int i = 7; i < args.length; i++) {
            String[] cell = args[i].split(":");
            String listener = cell[0], mechanism = cell[1], kind = cell[2];
            String topic = String.join("-", "sasl", "java", listener, mechanism, kind, runId).toLowerCase();
            String verdict;
            try {
                Properties config = config(listener.equals("SASL_SSL") ? ssl : plaintext, listener, mechanism, kind,
                        kind.equals("wrong-ca") ? otherCa : ca, user,
                        kind.equals("wrong-password") ? "wrong-" + password : password);
                List<String> expected = new ArrayList<>();
                for (int n = 0; n < COUNT; n++) expected.add(mechanism + "@" + listener + "-" + n);
                verdict = kind.startsWith("roundtrip") ? roundtrip(config, topic, expected) : refusal(config, kind);
            } catch (Exception e) {
                verdict = "FAIL " + causes(e);
            }
            failed |= verdict.startsWith("FAIL");
            System.out.println("java " + listener + " " + mechanism + " " + kind + ": " + verdict);
        }
        System.exit(failed ? 1 : 0);
    }

    static Properties config(String address, String listener, String mechanism, String kind, String ca,
            String user, String password) {
        Properties config = new Properties();
        config.put("bootstrap.servers", address);
        config.put("security.protocol", listener);
        config.put("sasl.mechanism", mechanism);
        if (listener.equals("SASL_SSL")) {
            config.put("ssl.truststore.type", "PEM");
            config.put("ssl.truststore.location", ca);
        }
        String credentials = " required username=\"" + user + "\" password=\"" + password + "\";";
        switch (mechanism) {
            case "PLAIN" -> config.put("sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule" + credentials);
            case "SCRAM-SHA-256", "SCRAM-SHA-512" -> config.put("sasl.jaas.config",
                    "org.apache.kafka.common.security.scram.ScramLoginModule" + credentials);
            case "OAUTHBEARER" -> {
                config.put("sasl.jaas.config", "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
                        + "required unsecuredLoginStringClaim_sub=\"" + user + "\";");
                if (kind.equals("expired-token")) {
                    config.put("sasl.login.callback.handler.class", ExpiredToken.class.getName());
                }
            }
            default -> throw new IllegalArgumentException("mechanism " + mechanism);
        }
        return config;
    }

    static String refusal(Properties common, String kind) throws InterruptedException {
        Properties props = new Properties();
        props.putAll(common);
        props.put("default.api.timeout.ms", "10000");
        props.put("request.timeout.ms", "5000");
        Class<?> expected = kind.equals("wrong-ca") ? SslAuthenticationException.class : SaslAuthenticationException.class;
        try (Admin admin = Admin.create(props)) {
            admin.listTopics().names().get();
            return "FAIL metadata answered";
        } catch (ExecutionException e) {
            String chain = causes(e.getCause());
            // The TLS refusal must be the certificate's, not any handshake
            // failure: the JDK's "PKIX path building failed" is Java's
            // "certificate verify failed".
            if (expected.isInstance(e.getCause()) && (!kind.equals("wrong-ca") || chain.contains("PKIX"))) {
                return "OK (refused: " + chain + ")";
            }
            return "FAIL not " + expected.getSimpleName() + ": " + e.getCause();
        }
    }

    /** The exception and its causes, outermost first. */
    static String causes(Throwable e) {
        StringBuilder out = new StringBuilder(String.valueOf(e));
        for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) out.append(" <- ").append(cause);
        return oneLine(out.toString());
    }

    static String oneLine(String message) {
        String line = String.valueOf(message).replace('\n', ' ');
        return line.length() > 300 ? line.substring(0, 300) : line;
    }

    static String roundtrip(Properties common, String topic, List<String> expected) throws Exception {
        Properties producerProps = new Properties();
        producerProps.putAll(common);
        producerProps.put("acks", "all");
        producerProps.put("max.block.ms", String.valueOf(DEADLINE_MS));
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            for (String value : expected) {
                producer.send(new ProducerRecord<>(topic, 0, null, value)).get(DEADLINE_MS, TimeUnit.MILLISECONDS);
            }
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(common);
        consumerProps.put("enable.auto.commit", "false");
        consumerProps.put("default.api.timeout.ms", String.valueOf(DEADLINE_MS));
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition partition = new TopicPartition(topic, 0);
            consumer.assign(List.of(partition));
            consumer.seek(partition, 0);
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (values.size() < expected.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    values.add(record.value());
                }
            }
        }
        if (!values.equals(expected)) return "FAIL read back " + values + ", expected " + expected;
        return "OK (" + COUNT + " records back)";
    }

    /** Logs in with an unsecured JWT whose exp is an hour past, while
     *  telling the client's login a lifetime an hour ahead, so that the
     *  client sends the token and the broker is the one to judge it. */
    public static class ExpiredToken implements AuthenticateCallbackHandler {
        private String sub;

        @Override
        public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
            sub = String.valueOf(entries.get(0).getOptions().get("unsecuredLoginStringClaim_sub"));
        }

        @Override
        public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
            for (Callback callback : callbacks) {
                if (!(callback instanceof OAuthBearerTokenCallback tokenCallback)) {
                    throw new UnsupportedCallbackException(callback);
                }
                long now = System.currentTimeMillis();
                String value = part("{\"alg\":\"none\"}") + "." + part("{\"sub\":\"" + sub + "\",\"iat\":"
                        + (now / 1000) + ",\"exp\":" + (now / 1000 - 3600) + "}") + ".";
                tokenCallback.token(new OAuthBearerToken() {
                    public String value() { return value; }
                    public Set<String> scope() { return Set.of(); }
                    public long lifetimeMs() { return now + 3_600_000; }
                    public String principalName() { return sub; }
                    public Long startTimeMs() { return now; }
                });
            }
        }

        static String part(String json) {
            return Base64.getUrlEncoder().withoutPadding().encodeToString(json.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public void close() {}
    }
}
