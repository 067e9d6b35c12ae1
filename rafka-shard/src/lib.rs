//! rafka-shard: one glommio executor per core.
