//! Seeds for the parser fuzz targets (`crates/dnsnat-core/fuzz`): well-formed
//! inputs, so that libFuzzer starts from the shapes real peers and files have.
//! Written by `scripts/fuzz.sh` (and the fuzz smoke of `npm test`) through
//! `DNSNAT_FUZZ_SEEDS=<corpus root> cargo test write_fuzz_seeds -- --ignored`.

use std::path::Path;

use crate::control::{MessageType, build};
use crate::dns::ProxyIpAllocator;
use crate::dns::proxy_ip_json::table_to_json;

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes files; run by scripts/fuzz.sh"]
fn write_fuzz_seeds_for_parsers() {
    let Some(root) = std::env::var_os("DNSNAT_FUZZ_SEEDS") else {
        return;
    };
    let root = Path::new(&root);
    let bodies = [
        (
            MessageType::AssignedIps,
            r#"{"resource":"web","domain":"app.corp.example","proxy_ips":["100.96.0.1","100.96.0.2","100.96.0.3","100.96.0.4"],"seq":1}"#,
        ),
        (
            MessageType::DomainStatus,
            r#"{"resource":"web","domain":"app.corp.example","status":"active","seq":1}"#,
        ),
        (MessageType::Goodbye, "{}"),
    ];
    for (i, (kind, body)) in bodies.iter().enumerate() {
        write(
            root,
            "control_parse",
            &format!("seed-{i}"),
            &build(*kind, body).unwrap(),
        );
    }
    for (i, text) in [
        "*.corp.example app.corp.example corp.example a.b.corp.example APP.Corp.Example.",
        "**.deep.example x.y.deep.example deep.example other.example",
        "build-?.ci.example build-1.ci.example build-12.ci.example",
        "exact.example exact.example inexact.example",
    ]
    .iter()
    .enumerate()
    {
        write(root, "pattern_match", &format!("seed-{i}"), text.as_bytes());
    }
    let mut a = ProxyIpAllocator::new();
    for (t, name) in ["app.corp.example", "db.corp.example", "x.deep.example"]
        .iter()
        .enumerate()
    {
        a.set_now(t as i64 * 1000);
        a.get_or_allocate(name).unwrap();
    }
    a.set_now(5000);
    write(
        root,
        "state_file",
        "seed-0",
        table_to_json(&a.export()).as_bytes(),
    );
    // Gate operations: admit to a buffering key, pass, flush, remove.
    let syn = [
        0x45u8, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 100, 64, 0, 2, 100, 96, 0, 1, 0x9c, 0x40, 1,
        0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let mut ops = Vec::new();
    for op in [0x00u8, 0x00, 0x10, 0x06, 0x08, 0x17, 0x10, 0x1a, 0x0b] {
        ops.push(op);
        ops.push(syn.len() as u8);
        ops.extend_from_slice(&syn);
    }
    write(root, "gate_table", "seed-0", &ops);
}
