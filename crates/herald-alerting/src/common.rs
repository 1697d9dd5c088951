//! What several alerting providers share beyond the toolkit of [`herald_http::provider`].

use herald_core::Event;

/// The reason of events that only say "work in progress": PagerDuty and incident.io send
/// nothing for them.
pub(crate) const PROGRESSING: &str = "Progressing";

/// The de-duplication key of PagerDuty and incident.io: the involved object's UID, so that
/// the recovery of an object resolves the alert its failure opened, and objects of the same
/// name in two clusters never share a key. Flux controllers always send the UID; for an event
/// without one, `<Kind>/<namespace>/<name>` keeps trigger and resolve paired (Flux sends an
/// empty key then, which pairs nothing).
pub(crate) fn object_key(event: &Event) -> String {
    let o = &event.involved_object;
    if o.uid.is_empty() {
        format!("{}/{}/{}", o.kind, o.namespace, o.name)
    } else {
        o.uid.clone()
    }
}
