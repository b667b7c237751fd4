//! Nuki Smart Lock BLE API v2.2.1: framing, encryption, pairing and commands. Pure
//! functions over bytes; no I/O.
