//! rafka-net: listeners, connections and one handler per Kafka API.
