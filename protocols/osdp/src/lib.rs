//! OSDP (IEC 60839-11-5) for a control panel: packet codec, messages, secure channel and
//! the leasegate credential profile. Pure functions over bytes; no I/O.
