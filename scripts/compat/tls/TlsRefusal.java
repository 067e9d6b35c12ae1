import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.errors.TimeoutException;

/**
 * A client that must not get through a TLS listener, with the Java client.
 * wrong-ca: TLS trusting CA_FILE (a PEM trust store), a CA that did not
 * sign the server's certificate: describeCluster must fail with
 * SslAuthenticationException. plaintext: no TLS against the TLS port: the
 * broker closes every attempt, so describeCluster must time out without an
 * answer (the Java client keeps retrying a closed connection).
 *
 * usage: java TlsRefusal BOOTSTRAP wrong-ca|plaintext CA_FILE
 */
public final class TlsRefusal {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String mode = args[1];
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "8000");
        if (mode.equals("wrong-ca")) {
            config.put("security.protocol", "SSL");
            config.put("ssl.truststore.type", "PEM");
            config.put("ssl.truststore.location", args[2]);
        }
        String problem;
        String seen = null;
        try (Admin admin = Admin.create(config)) {
            admin.describeCluster(new DescribeClusterOptions().timeoutMs(8000)).nodes().get(20, TimeUnit.SECONDS);
            problem = "metadata answered";
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            boolean expected = mode.equals("wrong-ca")
                    ? cause instanceof SslAuthenticationException
                    : cause instanceof TimeoutException;
            if (expected) {
                seen = cause.getClass().getSimpleName() + ": " + cause.getMessage();
                problem = null;
            } else {
                problem = "not the expected error: " + cause;
            }
        }
        if (problem != null) {
            System.out.println("java " + mode + ": FAIL: " + problem);
            System.exit(1);
        }
        System.out.println("java " + mode + ": OK: " + seen);
    }
}
