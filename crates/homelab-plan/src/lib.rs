//! The component catalog and the Plan computed from a validated Lab; pure data, no I/O.
