//! Whole-system tests. `template.rs` holds `template.yaml` to the code it deploys; the
//! end-to-end flows on the local stack join it as the stack lands.
