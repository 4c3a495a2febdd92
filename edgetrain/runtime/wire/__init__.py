"""What crosses the network between coordinator and devices: the authenticated, schema-checked control
plane and the shard spec and events (JSON, never pickle). May import: core and the standard library."""
