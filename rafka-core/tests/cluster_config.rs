//! The cluster keys of `server.properties`: `process.roles`,
//! `controller.quorum.*`, `controller.listener.names`, the broker's
//! heartbeat keys. Each parses, has Kafka's default, and a bad value or a
//! broken rule is an error naming its key.

use std::collections::BTreeMap;

use rafka_core::config::describe::{describe_broker, ConfigType, DynamicLayers};
use rafka_core::config::{
    BrokerConfig, ConfigError, ConfigSource, ConfigWarning, ProcessRoles, QuorumConfigError,
    QuorumVoter,
};

fn load(text: &str) -> (BrokerConfig, Vec<ConfigWarning>) {
    match BrokerConfig::from_properties_text(text) {
        Ok(loaded) => loaded,
        Err(e) => panic!("config rejected: {e}\n{text}"),
    }
}

fn error_text(text: &str) -> String {
    match BrokerConfig::from_properties_text(text) {
        Ok(_) => panic!("config accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

const VOTERS: &str = "controller.quorum.voters=1@127.0.0.1:19191,2@127.0.0.1:19192,3@[::1]:19193\n";

#[test]
fn defaults_are_a_single_combined_node() {
    let (c, warnings) = load("");
    assert!(warnings.is_empty());
    assert_eq!(c.process_roles, ProcessRoles::COMBINED);
    assert!(c.quorum.voters.is_empty() && c.quorum.bootstrap_servers.is_empty());
    assert!(!c.quorum_configured());
    assert_eq!(c.controller_address(), None);
    assert_eq!(c.controller_listener_names, ["CONTROLLER"]);
    assert!(c.controller_listeners.is_empty());
    let q = &c.quorum;
    assert_eq!(
        (
            q.election_timeout_ms,
            q.fetch_timeout_ms,
            q.election_backoff_max_ms,
            q.request_timeout_ms
        ),
        (1000, 2000, 1000, 2000)
    );
    assert_eq!(
        (c.broker_session_timeout_ms, c.broker_heartbeat_interval_ms),
        (9000, 2000)
    );
    assert_eq!(c.rack, None);
    assert_eq!(c.default_replication_factor, 1);
    assert_eq!(c.topic_defaults.config.min_insync_replicas, 1);
}

#[test]
fn a_voter_knows_its_controller_address() {
    let (c, warnings) = load(&format!("node.id=2\n{VOTERS}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(c.quorum_configured());
    assert_eq!(
        c.controller_address(),
        Some(("127.0.0.1".to_string(), 19192))
    );
    assert_eq!(
        c.quorum.voters[2],
        QuorumVoter {
            id: 3,
            host: "::1".into(),
            port: 19193
        }
    );
    let (c, _) = load(&format!("node.id=3\n{VOTERS}"));
    assert_eq!(c.controller_address(), Some(("::1".to_string(), 19193)));
    // broker.id is node.id's older name.
    let (c, _) = load(&format!("broker.id=1\n{VOTERS}"));
    assert_eq!(
        c.controller_address(),
        Some(("127.0.0.1".to_string(), 19191))
    );
}

#[test]
fn every_cluster_key_parses() {
    let (c, _) = load(
        "process.roles=broker\nnode.id=7\n\
         controller.quorum.bootstrap.servers=c1:9093, [::1]:9094\n\
         controller.listener.names=ctl,Other\n\
         controller.quorum.election.timeout.ms=1500\n\
         controller.quorum.fetch.timeout.ms=3000\n\
         controller.quorum.election.backoff.max.ms=700\n\
         controller.quorum.request.timeout.ms=2500\n\
         broker.session.timeout.ms=18000\nbroker.heartbeat.interval.ms=3000\n\
         broker.rack=rack-a\ndefault.replication.factor=3\nmin.insync.replicas=2\n",
    );
    assert_eq!(
        c.process_roles,
        ProcessRoles {
            broker: true,
            controller: false
        }
    );
    let servers: Vec<String> = c
        .quorum
        .bootstrap_servers
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(servers, ["c1:9093", "[::1]:9094"]);
    assert!(c.quorum_configured());
    assert_eq!(
        c.controller_address(),
        None,
        "a broker-only node is no voter"
    );
    assert_eq!(c.controller_listener_names, ["CTL", "OTHER"]);
    let q = &c.quorum;
    assert_eq!(
        (
            q.election_timeout_ms,
            q.fetch_timeout_ms,
            q.election_backoff_max_ms,
            q.request_timeout_ms
        ),
        (1500, 3000, 700, 2500)
    );
    assert_eq!(
        (c.broker_session_timeout_ms, c.broker_heartbeat_interval_ms),
        (18000, 3000)
    );
    assert_eq!(c.rack.as_deref(), Some("rack-a"));
    assert_eq!(c.default_replication_factor, 3);
    assert_eq!(c.topic_defaults.config.min_insync_replicas, 2);
    // Roles other than combined are stored as written.
    let (c, _) = load(&format!("process.roles=controller\nnode.id=1\n{VOTERS}"));
    assert!(c.process_roles.is_controller_only());
    assert_eq!(
        c.controller_address(),
        Some(("127.0.0.1".to_string(), 19191))
    );
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        (
            "process.roles=",
            "invalid value \"\" for process.roles: expected a comma-separated list of broker, controller",
        ),
        (
            "process.roles=broker,zookeeper",
            "invalid value \"broker,zookeeper\" for process.roles: expected a comma-separated list of broker, controller",
        ),
        (
            "controller.quorum.voters=1@127.0.0.1",
            "invalid value \"1@127.0.0.1\" for controller.quorum.voters: expected a comma-separated list of id@host:port",
        ),
        (
            "controller.quorum.bootstrap.servers=c1",
            "invalid value \"c1\" for controller.quorum.bootstrap.servers: expected a comma-separated list of host:port",
        ),
        (
            "controller.quorum.election.timeout.ms=0",
            "invalid value \"0\" for controller.quorum.election.timeout.ms: expected an integer >= 1",
        ),
        (
            "controller.quorum.fetch.timeout.ms=soon",
            "invalid value \"soon\" for controller.quorum.fetch.timeout.ms: expected an integer >= 1",
        ),
        (
            "controller.quorum.election.backoff.max.ms=-1",
            "invalid value \"-1\" for controller.quorum.election.backoff.max.ms: expected an integer >= 1",
        ),
        (
            "controller.quorum.request.timeout.ms=2147483648",
            "invalid value \"2147483648\" for controller.quorum.request.timeout.ms: expected an integer >= 1",
        ),
        (
            "broker.session.timeout.ms=0",
            "invalid value \"0\" for broker.session.timeout.ms: expected an integer >= 1",
        ),
        (
            "broker.heartbeat.interval.ms=x",
            "invalid value \"x\" for broker.heartbeat.interval.ms: expected an integer >= 1",
        ),
        (
            "broker.heartbeat.interval.ms=9000",
            "broker.heartbeat.interval.ms=9000 conflicts with broker.session.timeout.ms=9000",
        ),
        (
            "controller.quorum.voters=1@a:1,1@b:2",
            "controller.quorum.voters: voter id 1 appears more than once",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_text(text), expected, "{text}");
    }
}

#[test]
fn kafka_rules_across_roles_node_id_and_voters() {
    let cases = [
        (
            format!("node.id=4\n{VOTERS}"),
            "If process.roles contains the 'controller' role, the node id 4 must be included in the set of voters controller.quorum.voters=[1, 2, 3]",
        ),
        (
            format!("process.roles=controller\nnode.id=4\n{VOTERS}"),
            "If process.roles contains the 'controller' role, the node id 4 must be included in the set of voters controller.quorum.voters=[1, 2, 3]",
        ),
        (
            format!("process.roles=broker\nnode.id=1\n{VOTERS}"),
            "If process.roles contains just the 'broker' role, the node id 1 must not be included in the set of voters controller.quorum.voters=[1, 2, 3]",
        ),
        (
            "process.roles=controller\nnode.id=1\n".to_string(),
            "controller.quorum.voters must be set when process.roles=controller",
        ),
        (
            "process.roles=broker\nnode.id=1\n".to_string(),
            "controller.quorum.voters or controller.quorum.bootstrap.servers must be set when process.roles=broker",
        ),
        (
            format!("node.id=1\ncontroller.listener.names=\n{VOTERS}"),
            "controller.listener.names must contain at least one value when a quorum is configured",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_text(&text), expected, "{text}");
    }
    let error = BrokerConfig::from_properties_text(&format!("node.id=9\n{VOTERS}"));
    assert!(
        matches!(&error, Err(ConfigError::Quorum(e)) if e.key() == "controller.quorum.voters"),
        "{error:?}"
    );
}

#[test]
fn the_controller_listener_of_a_voter_is_its_voter_address() {
    // Kafka's combined-node file: the CONTROLLER listener (PLAINTEXT
    // without a map, as Kafka) at the voter entry's port, not a client one.
    let (c, warnings) = load(&format!(
        "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:19091,CONTROLLER://:19191\n{VOTERS}"
    ));
    assert!(warnings.is_empty(), "{warnings:?}");
    let clients: Vec<String> = c.listeners.iter().map(ToString::to_string).collect();
    assert_eq!(clients, ["PLAINTEXT://127.0.0.1:19091"]);
    let controllers: Vec<String> = c
        .controller_listeners
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(controllers, ["CONTROLLER://:19191"]);
    let error = error_text(&format!(
        "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:19091,CONTROLLER://:9093\n{VOTERS}"
    ));
    assert_eq!(
        error,
        "listener CONTROLLER://:9093 and this node's entry 1@127.0.0.1:19191 in \
         controller.quorum.voters must have the same port: the voter address is the \
         controller listener"
    );
    let error = error_text(&format!(
        "node.id=1\nlisteners=PLAINTEXT://0.0.0.0:19191\n{VOTERS}"
    ));
    assert_eq!(
        error,
        "controller.quorum.voters entry 1@127.0.0.1:19191 is also client listener \
         PLAINTEXT://0.0.0.0:19191: the controller listener needs a port of its own"
    );
    let error = error_text(&format!(
        "process.roles=broker\nnode.id=5\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\n{VOTERS}"
    ));
    assert_eq!(
        error,
        "controller.listener.names must not contain a value appearing in the 'listeners' \
         configuration when running KRaft with just the broker role (CONTROLLER)"
    );
    // A single node (no voters) skips it with a warning, as before.
    let (c, warnings) = load("listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n");
    assert_eq!(c.listeners.len(), 1);
    assert!(c.controller_listeners.is_empty());
    assert_eq!(
        warnings,
        [ConfigWarning::ControllerListenerSkipped {
            name: "CONTROLLER".into()
        }]
    );
}

#[test]
fn describe_configs_shows_the_cluster_keys() {
    let (empty, none) = (BTreeMap::new(), BTreeMap::new());
    let layers = DynamicLayers {
        cluster: &empty,
        broker: &none,
    };
    let describe = |text: &str| {
        let (config, _) = load(text);
        describe_broker(&config, layers)
            .into_iter()
            .map(|d| (d.name.clone(), (d.value.clone(), d.source, d.kind)))
            .collect::<BTreeMap<_, _>>()
    };
    let defaults = describe("");
    let expected: [(&str, &str, ConfigType); 10] = [
        ("process.roles", "broker,controller", ConfigType::List),
        ("controller.quorum.voters", "", ConfigType::List),
        ("controller.quorum.bootstrap.servers", "", ConfigType::List),
        (
            "controller.listener.names",
            "CONTROLLER",
            ConfigType::String,
        ),
        (
            "controller.quorum.election.timeout.ms",
            "1000",
            ConfigType::Int,
        ),
        (
            "controller.quorum.fetch.timeout.ms",
            "2000",
            ConfigType::Int,
        ),
        (
            "controller.quorum.election.backoff.max.ms",
            "1000",
            ConfigType::Int,
        ),
        (
            "controller.quorum.request.timeout.ms",
            "2000",
            ConfigType::Int,
        ),
        ("broker.session.timeout.ms", "9000", ConfigType::Int),
        ("broker.heartbeat.interval.ms", "2000", ConfigType::Int),
    ];
    for (name, value, kind) in expected {
        assert_eq!(
            defaults.get(name),
            Some(&(Some(value.to_string()), ConfigSource::Default, kind)),
            "{name}"
        );
    }
    assert_eq!(
        defaults.get("broker.rack"),
        Some(&(None, ConfigSource::Default, ConfigType::String))
    );
    let set = describe(&format!(
        "node.id=3\nprocess.roles=broker,controller\nbroker.rack=r1\n\
         controller.quorum.election.timeout.ms=1500\n{VOTERS}"
    ));
    let value = |name: &str| set.get(name).map(|(v, s, _)| (v.clone(), *s));
    let static_value = |v: &str| Some((Some(v.to_string()), ConfigSource::StaticBroker));
    assert_eq!(
        value("controller.quorum.voters"),
        static_value("1@127.0.0.1:19191,2@127.0.0.1:19192,3@[::1]:19193")
    );
    assert_eq!(value("process.roles"), static_value("broker,controller"));
    assert_eq!(value("broker.rack"), static_value("r1"));
    assert_eq!(
        value("controller.quorum.election.timeout.ms"),
        static_value("1500")
    );
    assert_eq!(
        value("controller.quorum.fetch.timeout.ms"),
        Some((Some("2000".to_string()), ConfigSource::Default))
    );
    assert!(rafka_core::config::describe::is_known_broker_key(
        "controller.quorum.voters"
    ));
    assert!(!rafka_core::config::describe::is_dynamic_broker_key(
        "controller.quorum.voters"
    ));
}

#[test]
fn quorum_errors_point_at_their_key() {
    let cases = [
        (
            QuorumConfigError::VotersRequired,
            "controller.quorum.voters",
        ),
        (
            QuorumConfigError::NoControllerListenerName,
            "controller.listener.names",
        ),
        (
            QuorumConfigError::ControllerListenerPort {
                listener: String::new(),
                voter: String::new(),
            },
            "listeners",
        ),
    ];
    for (error, key) in cases {
        assert_eq!(error.key(), key);
    }
}
