//! The TUN device: created on start, configured with the tunnel addresses and
//! the routes of the role, removed when the last handle closes.
//!
//! The device is not persistent, so the kernel deletes it when its file
//! descriptor closes: on `stop()`, and also when the process dies in any way.
//! Addresses, MTU and routes go through iproute2, which the project requires
//! anyway (namespaces, tests, demo).
//!
//! The device is `tun-rs`'s, not `tun`'s, for its
//! offloads: with `IFF_VNET_HDR` and TSO the kernel hands us a TCP burst in
//! one read and takes coalesced segments in one write (docs/decisions.md has
//! the measurement that justified the change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use super::cidr::Cidr;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot create TUN device '{name}': {source}{hint}", hint = create_hint(source))]
    Create {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot configure TUN device '{name}': `ip {args}` failed: {stderr}")]
    Configure {
        name: String,
        args: String,
        stderr: String,
    },
}

/// What a person can do about a failed TUNSETIFF. The usual causes are two,
/// and they want different fixes: no permission (or no TUN support at all),
/// and a name already held by another process's device (EBUSY).
fn create_hint(source: &std::io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EBUSY) => {
            " (another process holds a device of that name, perhaps another dnsnat: stop it or choose another name)"
        }
        Some(libc::EPERM | libc::EACCES | libc::ENOENT | libc::ENODEV) => {
            " (dnsnat needs Linux, /dev/net/tun and root or CAP_NET_ADMIN)"
        }
        _ => "",
    }
}

pub struct DeviceConfig<'a> {
    pub name: &'a str,
    pub mtu: u16,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub routes: &'a [Cidr],
    /// More local addresses (the client's DNS sentinels).
    pub extra_addresses: &'a [IpAddr],
    /// TCP segmentation offload and checksum offload (virtio-net headers).
    pub offload: bool,
}

fn ip(name: &str, args: &[&str]) -> Result<(), DeviceError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| DeviceError::Configure {
            name: name.into(),
            args: args.join(" "),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DeviceError::Configure {
            name: name.into(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Creates and configures the device. Must run inside the tokio runtime.
pub fn create(cfg: &DeviceConfig<'_>) -> Result<tun_rs::AsyncDevice, DeviceError> {
    let build = |offload: bool| {
        tun_rs::DeviceBuilder::new()
            .name(cfg.name)
            .offload(offload)
            .build_async()
    };
    // A kernel without IFF_VNET_HDR or TUNSETOFFLOAD refuses the offloaded
    // device; the plain one then does the same job, one packet per call.
    let dev = match build(cfg.offload) {
        Err(_) if cfg.offload => build(false),
        result => result,
    }
    .map_err(|source| DeviceError::Create {
        name: cfg.name.into(),
        source,
    })?;
    let mtu = cfg.mtu.to_string();
    ip(
        cfg.name,
        &["link", "set", "dev", cfg.name, "mtu", &mtu, "up"],
    )?;
    let v4 = format!("{}/32", cfg.ipv4);
    ip(cfg.name, &["-4", "addr", "add", &v4, "dev", cfg.name])?;
    if let Some(v6) = cfg.ipv6 {
        let addr = format!("{v6}/128");
        ip(
            cfg.name,
            &["-6", "addr", "add", &addr, "dev", cfg.name, "nodad"],
        )?;
    }
    for addr in cfg.extra_addresses {
        match addr {
            IpAddr::V4(a) => ip(
                cfg.name,
                &["-4", "addr", "add", &format!("{a}/32"), "dev", cfg.name],
            )?,
            // No duplicate address detection: nothing else can own it on a
            // point-to-point device, and DAD would delay binding the stub.
            IpAddr::V6(a) => ip(
                cfg.name,
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/128"),
                    "dev",
                    cfg.name,
                    "nodad",
                ],
            )?,
        }
    }
    for route in cfg.routes {
        let r = route.to_string();
        // The preferred source of every route is our tunnel address of that
        // family. Without it, IPv6 source selection (longest matching prefix)
        // would pick the client's DNS sentinel, which shares a longer prefix
        // with the proxy range than the tunnel address does, and the gateway
        // rightly drops packets from a source that is not the client's.
        let src = match route.addr {
            IpAddr::V4(_) => Some(cfg.ipv4.to_string()),
            IpAddr::V6(_) => cfg.ipv6.map(|a| a.to_string()),
        };
        let family = if route.addr.is_ipv4() { "-4" } else { "-6" };
        let mut args = vec![family, "route", "replace", &r, "dev", cfg.name];
        if let Some(src) = &src {
            args.extend(["src", src.as_str()]);
        }
        ip(cfg.name, &args)?;
    }
    Ok(dev)
}
