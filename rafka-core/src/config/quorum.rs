//! The cluster keys of `server.properties`, as KRaft names them:
//! `process.roles`, `controller.quorum.voters` (`id@host:port,...`),
//! `controller.quorum.bootstrap.servers` (KIP-853), the quorum's timeouts
//! and the rules across them that Kafka's `KafkaConfig` / `QuorumConfig`
//! enforce (a controller is a voter, a broker-only node is not, a node
//! without controllers cannot be a broker-only node).
//!
//! No voters and no bootstrap servers (the default) is today's single
//! node: the controller runs in process and nothing here applies.

use std::fmt;

use super::value::{split_list, Expected, InvalidValue};

/// `process.roles`: which of KRaft's roles this node plays. Default (the
/// key unset): both, a combined node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

impl Default for ProcessRoles {
    fn default() -> Self {
        ProcessRoles::COMBINED
    }
}

impl ProcessRoles {
    /// `broker,controller`.
    pub const COMBINED: ProcessRoles = ProcessRoles {
        broker: true,
        controller: true,
    };

    /// Only the broker role.
    pub fn is_broker_only(self) -> bool {
        self.broker && !self.controller
    }

    /// Only the controller role.
    pub fn is_controller_only(self) -> bool {
        self.controller && !self.broker
    }
}

impl fmt::Display for ProcessRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<&str> = [(self.broker, "broker"), (self.controller, "controller")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(&roles.join(","))
    }
}

/// The role names `process.roles` accepts.
pub const ROLE_NAMES: &[&str] = &["broker", "controller"];

/// Parses `process.roles`: a non-empty list of `broker` and `controller`,
/// each at most once (Kafka refuses duplicates too).
pub fn parse_process_roles(key: &str, value: &str) -> Result<ProcessRoles, InvalidValue> {
    let bad = || InvalidValue::new(key, value, Expected::ListOf(ROLE_NAMES));
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in split_list(value) {
        let slot = match role {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            _ => return Err(bad()),
        };
        if *slot {
            return Err(bad());
        }
        *slot = true;
    }
    if !roles.broker && !roles.controller {
        return Err(bad());
    }
    Ok(roles)
}

/// A host and a port, as a quorum address (`host:port`, `[v6]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// IPv6 addresses are kept without their brackets.
    pub host: String,
    /// Never 0: others connect to it.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One entry of `controller.quorum.voters`: a controller's node id and the
/// address of its controller listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    /// IPv6 addresses are kept without their brackets.
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    pub fn address(&self) -> HostPort {
        HostPort {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.address())
    }
}

/// `host:port` or `[ipv6]:port`, with a host Kafka's `validHostPattern`
/// would take (letters, digits, `.`, `-`, `_`; `:` inside brackets) and a
/// port in 1..=65535. None when the text is anything else.
fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner.strip_suffix(']')?;
            let ok = inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            (ok && inner.contains(':')).then_some(inner)?
        }
        None => {
            let ok = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            ok.then_some(host)?
        }
    };
    // Kafka: "Host string (0.0.0.0) is not routeable"; nobody can reach a
    // wildcard address, and the voters' addresses are what peers dial.
    if host.is_empty() || host == "0.0.0.0" || host == "::" {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (port != 0).then(|| HostPort {
        host: host.to_string(),
        port,
    })
}

/// Parses `controller.quorum.voters`: `id@host:port[,id@host:port...]`,
/// ids >= 0 and distinct. Empty is no quorum.
pub fn parse_voters(key: &str, value: &str) -> Result<Vec<QuorumVoter>, QuorumConfigError> {
    let bad = || InvalidValue::new(key, value, Expected::QuorumVoters);
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in split_list(value) {
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(bad)?;
        let address = parse_host_port(address).ok_or_else(bad)?;
        if voters.iter().any(|v| v.id == id) {
            return Err(QuorumConfigError::DuplicateVoter { id });
        }
        voters.push(QuorumVoter {
            id,
            host: address.host,
            port: address.port,
        });
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers`: `host:port[,...]`.
pub fn parse_bootstrap_servers(key: &str, value: &str) -> Result<Vec<HostPort>, InvalidValue> {
    split_list(value)
        .map(|entry| {
            parse_host_port(entry).ok_or_else(|| InvalidValue::new(key, value, Expected::HostPorts))
        })
        .collect()
}

/// The `controller.quorum.*` settings of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `controller.quorum.voters`, in the order written.
    pub voters: Vec<QuorumVoter>,
    /// `controller.quorum.bootstrap.servers` (KIP-853), in the order written.
    pub bootstrap_servers: Vec<HostPort>,
    /// `controller.quorum.election.timeout.ms`: how long a voter waits
    /// without hearing from a leader before it starts an election.
    pub election_timeout_ms: i32,
    /// `controller.quorum.fetch.timeout.ms`: how long without a successful
    /// fetch from the leader before a voter becomes a candidate.
    pub fetch_timeout_ms: i32,
    /// `controller.quorum.election.backoff.max.ms`: the ceiling of the
    /// exponential backoff between elections.
    pub election_backoff_max_ms: i32,
    /// `controller.quorum.request.timeout.ms`: how long a quorum request
    /// waits for its answer.
    pub request_timeout_ms: i32,
}

/// Kafka's defaults (`QuorumConfig`).
pub const ELECTION_TIMEOUT_MS_DEFAULT: i32 = 1_000;
pub const FETCH_TIMEOUT_MS_DEFAULT: i32 = 2_000;
pub const ELECTION_BACKOFF_MAX_MS_DEFAULT: i32 = 1_000;
pub const REQUEST_TIMEOUT_MS_DEFAULT: i32 = 2_000;

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            voters: Vec::new(),
            bootstrap_servers: Vec::new(),
            election_timeout_ms: ELECTION_TIMEOUT_MS_DEFAULT,
            fetch_timeout_ms: FETCH_TIMEOUT_MS_DEFAULT,
            election_backoff_max_ms: ELECTION_BACKOFF_MAX_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl QuorumConfig {
    /// The voter entry of `node_id`, if it is a voter.
    pub fn voter(&self, node_id: i32) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.id == node_id)
    }

    fn voter_ids(&self) -> Vec<i32> {
        self.voters.iter().map(|v| v.id).collect()
    }

    /// Kafka's rules between `process.roles`, `node.id` and the quorum keys
    /// (KafkaConfig's validateValues).
    pub fn validate(&self, roles: ProcessRoles, node_id: i32) -> Result<(), QuorumConfigError> {
        let is_voter = self.voter(node_id).is_some();
        if roles.controller && !self.voters.is_empty() && !is_voter {
            return Err(QuorumConfigError::ControllerNotVoter {
                node_id,
                voters: self.voter_ids(),
            });
        }
        if roles.is_broker_only() && is_voter {
            return Err(QuorumConfigError::BrokerIsVoter {
                node_id,
                voters: self.voter_ids(),
            });
        }
        if roles.is_controller_only() && self.voters.is_empty() {
            return Err(QuorumConfigError::VotersRequired);
        }
        if roles.is_broker_only() && self.voters.is_empty() && self.bootstrap_servers.is_empty() {
            return Err(QuorumConfigError::ControllersRequired);
        }
        Ok(())
    }
}

/// A quorum setting that breaks one of Kafka's rules; each names its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuorumConfigError {
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error("controller.quorum.voters: voter id {id} appears more than once")]
    DuplicateVoter { id: i32 },
    #[error(
        "If process.roles contains the 'controller' role, the node id {node_id} must be \
         included in the set of voters controller.quorum.voters={voters:?}"
    )]
    ControllerNotVoter { node_id: i32, voters: Vec<i32> },
    #[error(
        "If process.roles contains just the 'broker' role, the node id {node_id} must not be \
         included in the set of voters controller.quorum.voters={voters:?}"
    )]
    BrokerIsVoter { node_id: i32, voters: Vec<i32> },
    #[error("controller.quorum.voters must be set when process.roles=controller")]
    VotersRequired,
    #[error(
        "controller.quorum.voters or controller.quorum.bootstrap.servers must be set when \
         process.roles=broker"
    )]
    ControllersRequired,
    #[error(
        "controller.listener.names must contain at least one value when a quorum is configured"
    )]
    NoControllerListenerName,
    #[error(
        "controller.listener.names must not contain a value appearing in the 'listeners' \
         configuration when running KRaft with just the broker role ({name})"
    )]
    ControllerListenerOnBroker { name: String },
    #[error(
        "listener {listener} and this node's entry {voter} in controller.quorum.voters must \
         have the same port: the voter address is the controller listener"
    )]
    ControllerListenerPort { listener: String, voter: String },
    #[error(
        "controller.quorum.voters entry {voter} is also client listener {listener}: the \
         controller listener needs a port of its own"
    )]
    ControllerPortTaken { voter: String, listener: String },
}

impl QuorumConfigError {
    /// The key the error is about (where `check-config` points).
    pub fn key(&self) -> &str {
        match self {
            QuorumConfigError::InvalidValue(v) => &v.key,
            QuorumConfigError::DuplicateVoter { .. }
            | QuorumConfigError::ControllerNotVoter { .. }
            | QuorumConfigError::BrokerIsVoter { .. }
            | QuorumConfigError::VotersRequired
            | QuorumConfigError::ControllersRequired
            | QuorumConfigError::ControllerPortTaken { .. } => "controller.quorum.voters",
            QuorumConfigError::NoControllerListenerName
            | QuorumConfigError::ControllerListenerOnBroker { .. } => "controller.listener.names",
            QuorumConfigError::ControllerListenerPort { .. } => "listeners",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print_in_kafka_order() {
        let parse = |v: &str| parse_process_roles("process.roles", v);
        assert_eq!(parse("broker,controller"), Ok(ProcessRoles::COMBINED));
        assert_eq!(parse(" controller , broker "), Ok(ProcessRoles::COMBINED));
        let broker = parse("broker").expect("broker");
        assert!(broker.is_broker_only() && !broker.is_controller_only());
        assert_eq!(broker.to_string(), "broker");
        let controller = parse("controller").expect("controller");
        assert!(controller.is_controller_only());
        assert_eq!(ProcessRoles::default().to_string(), "broker,controller");
        for bad in [
            "",
            " , ",
            "broker,broker",
            "Broker",
            "zookeeper",
            "broker;controller",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid value {bad:?} for process.roles: expected a comma-separated list \
                     of broker, controller"
                )
            );
        }
    }

    #[test]
    fn voters_parse_kafka_syntax_with_ipv6() {
        let key = "controller.quorum.voters";
        let voters =
            parse_voters(key, "1@127.0.0.1:9190, 2@[::1]:9191,3@kafka-3.example:9192").unwrap();
        let printed: Vec<String> = voters.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            ["1@127.0.0.1:9190", "2@[::1]:9191", "3@kafka-3.example:9192"]
        );
        assert_eq!(
            voters[1],
            QuorumVoter {
                id: 2,
                host: "::1".into(),
                port: 9191
            }
        );
        assert_eq!(parse_voters(key, ""), Ok(Vec::new()));
    }

    #[test]
    fn bad_voter_entries_name_the_key() {
        let key = "controller.quorum.voters";
        for bad in [
            "1@127.0.0.1",
            "127.0.0.1:9190",
            "x@127.0.0.1:9190",
            "-1@127.0.0.1:9190",
            "1@127.0.0.1:0",
            "1@127.0.0.1:65536",
            "1@:9190",
            "1@0.0.0.0:9190",
            "1@::1:9190",
            "1@[::1:9190",
            "1@a b:9190",
            "1@h:1@h:2",
        ] {
            let error = parse_voters(key, bad).expect_err(bad);
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid value {bad:?} for controller.quorum.voters: expected a \
                     comma-separated list of id@host:port"
                ),
            );
            assert_eq!(error.key(), key);
        }
        let duplicate = parse_voters(key, "1@a:1,2@b:2,1@c:3").expect_err("duplicate");
        assert_eq!(duplicate, QuorumConfigError::DuplicateVoter { id: 1 });
        assert_eq!(
            duplicate.to_string(),
            "controller.quorum.voters: voter id 1 appears more than once"
        );
    }

    #[test]
    fn bootstrap_servers_are_host_port_lists() {
        let key = "controller.quorum.bootstrap.servers";
        let servers = parse_bootstrap_servers(key, "localhost:9093,[::1]:9094").unwrap();
        let printed: Vec<String> = servers.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["localhost:9093", "[::1]:9094"]);
        let error = parse_bootstrap_servers(key, "localhost").expect_err("no port");
        assert_eq!(
            error.to_string(),
            "invalid value \"localhost\" for controller.quorum.bootstrap.servers: expected a \
             comma-separated list of host:port"
        );
    }

    fn quorum(voters: &str, bootstrap: &str) -> QuorumConfig {
        QuorumConfig {
            voters: parse_voters("controller.quorum.voters", voters).unwrap(),
            bootstrap_servers: parse_bootstrap_servers("b", bootstrap).unwrap(),
            ..QuorumConfig::default()
        }
    }

    #[test]
    fn kafka_rules_across_roles_node_id_and_voters() {
        let broker = ProcessRoles {
            broker: true,
            controller: false,
        };
        let controller = ProcessRoles {
            broker: false,
            controller: true,
        };
        let three = quorum("1@h:1,2@h:2,3@h:3", "");
        assert_eq!(three.validate(ProcessRoles::COMBINED, 2), Ok(()));
        assert_eq!(three.validate(controller, 3), Ok(()));
        assert_eq!(three.validate(broker, 4), Ok(()));
        let error = three.validate(ProcessRoles::COMBINED, 4).unwrap_err();
        assert_eq!(
            error.to_string(),
            "If process.roles contains the 'controller' role, the node id 4 must be included \
             in the set of voters controller.quorum.voters=[1, 2, 3]"
        );
        let error = three.validate(broker, 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "If process.roles contains just the 'broker' role, the node id 1 must not be \
             included in the set of voters controller.quorum.voters=[1, 2, 3]"
        );
        let none = QuorumConfig::default();
        assert_eq!(none.validate(ProcessRoles::COMBINED, 0), Ok(()));
        let error = none.validate(controller, 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "controller.quorum.voters must be set when process.roles=controller"
        );
        assert_eq!(error.key(), "controller.quorum.voters");
        let error = none.validate(broker, 1).unwrap_err();
        assert_eq!(error, QuorumConfigError::ControllersRequired);
        assert_eq!(quorum("", "h:9093").validate(broker, 1), Ok(()));
    }
}
