//! The client's resources as they cross the boundary, from the configuration.
//! (The proxy-IP table crosses as JSON: `dnsnat_core::dns::proxy_ip_json`.)

use dnsnat_core::dns::{IpStack, Resource, ResourceTable};
use dnsnat_core::pattern::Pattern;
use napi_derive::napi;

/// A DNS resource of the client's configuration.
#[napi(object)]
#[derive(Clone)]
pub struct ResourceSpec {
    pub id: String,
    pub pattern: String,
    /// The `id` of the gateway that serves it.
    pub gateway: String,
    /// `dual` (default), `ipv4` or `ipv6`.
    pub ip_stack: Option<String>,
}

pub fn resource_table(specs: &[ResourceSpec]) -> Result<ResourceTable, String> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let pattern =
            Pattern::parse(&s.pattern).map_err(|e| format!("resources[{i}].pattern: {e}"))?;
        let ip_stack: IpStack = s
            .ip_stack
            .as_deref()
            .unwrap_or("dual")
            .parse()
            .map_err(|e| format!("resources[{i}].ipStack: {e}"))?;
        out.push(Resource {
            id: s.id.clone(),
            gateway_id: s.gateway.clone(),
            pattern,
            ip_stack,
        });
    }
    ResourceTable::new(out).map_err(|e| format!("resources: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_report_the_failing_index() {
        let bad = ResourceSpec {
            id: "x".into(),
            pattern: "*.example".into(),
            gateway: "gw".into(),
            ip_stack: Some("ipv5".into()),
        };
        let e = resource_table(&[bad]).err().unwrap();
        assert!(e.starts_with("resources[0].ipStack"), "{e}");
    }
}
