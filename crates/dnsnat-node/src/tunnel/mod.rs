//! A WireGuard tunnel with its TUN device, exposed to JavaScript as `Tunnel`.
//!
//! This is the transport both roles build on: the client adds its gateways as
//! peers, the gateway its clients. JavaScript configures it and exchanges
//! control messages through it; packets never leave Rust.

mod cidr;
mod control_budget;
mod device;
mod io;
mod loops;
mod outbox;
mod packet_threads;
mod peers;
mod tasks;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use boringtun::noise::Tunn;
use dnsnat_core::constants::TUN_MTU;
use dnsnat_core::control::{self, MessageType};
use dnsnat_core::nat::{ClientNat, Mapping, PortFilter, PortRule, Timestamp};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::events;
pub use crate::events::TunnelEvent;
pub use cidr::Cidr;

use crate::client::table::{self, ResourceSpec};
use crate::client::{ClientRole, NatKey, dns_server};
use crate::counters::{self, Counters};
use crate::keys;
use dnsnat_core::constants::{
    PROXY_V4_NET, PROXY_V4_PREFIX, PROXY_V6_NET, PROXY_V6_PREFIX, SENTINEL_V4, SENTINEL_V6,
};
use dnsnat_core::dns::{ProxyIpAllocator, Stub, StubOptions};
use dnsnat_core::gate::GateMode;
use loops::{PeerSpec, Shared};
use packet_threads::{PacketRuntimes, PacketThreads};
use peers::Peer;
use tasks::Tasks;

/// Send and receive buffer of the tunnel's UDP socket.
const SOCKET_BUFFER_BYTES: usize = 7 << 20;
/// How long `stop` waits for the runtime to drop the tunnel's tasks; they go
/// in microseconds unless the runtime is stuck, which must not hang Node.
/// A client name neither queried nor carrying traffic for this long gives its
/// proxy IPs up: far above any DNS cache (the stub's answers say 1 s).
const DEFAULT_NAME_IDLE_MS: u64 = 24 * 60 * 60 * 1000;
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

/// How to create a tunnel.
#[napi(object)]
pub struct TunnelOptions {
    /// Name of the TUN device, e.g. `dnsnat0`.
    pub name: String,
    /// Our WireGuard private key, base64.
    pub private_key: String,
    /// UDP address to listen on, e.g. `0.0.0.0:51820`; default `0.0.0.0:0`.
    pub listen: Option<String>,
    /// Our IPv4 address inside the tunnel.
    pub ipv4: String,
    /// Our IPv6 address inside the tunnel.
    pub ipv6: Option<String>,
    /// Prefixes routed into the device, e.g. the proxy ranges on a client.
    pub routes: Option<Vec<String>>,
    /// Device MTU; default 1280.
    pub mtu: Option<u32>,
    /// TCP segmentation and checksum offloads on the device (default true):
    /// whole TCP bursts per read and write instead of one packet each.
    /// `false` is for comparison and for kernels without `IFF_VNET_HDR`.
    pub offload: Option<bool>,
    /// The client role: a stub DNS resolver on the sentinel addresses and
    /// routes for the proxy ranges into the device.
    pub client: Option<ClientOptions>,
}

/// The client role of a tunnel.
#[napi(object)]
pub struct ClientOptions {
    pub resources: Vec<ResourceSpec>,
    /// Where queries the stub does not answer go: `ip` or `ip:port`.
    pub upstream: Vec<String>,
    /// A proxy-IP table exported earlier (`exportProxyIps()`), to seed from.
    pub proxy_ip_table: Option<String>,
    /// Addresses the stub listens on; default the two sentinels, port 53.
    pub dns_listen: Option<Vec<String>>,
    /// Domains holding proxy IPs at most; past it the least recently used
    /// gives its addresses up. Default 16,384.
    pub max_names: Option<u32>,
    /// A domain neither queried nor carrying traffic for this long gives its
    /// proxy IPs up. Default 24 hours.
    pub name_idle_ms: Option<f64>,
}

/// A WireGuard peer.
#[napi(object)]
pub struct PeerOptions {
    /// The peer's public key, base64.
    pub public_key: String,
    /// Where to reach it (`host:port`); optional for peers that connect to us.
    pub endpoint: Option<String>,
    /// Prefixes routed to this peer, and the only sources accepted from it.
    pub allowed_ips: Vec<String>,
    /// Seconds between keepalives (WireGuard's PersistentKeepalive).
    pub persistent_keepalive: Option<u32>,
    /// Gateway role: translate this client's traffic with a NAT of its own
    /// (its tunnel IPs are the host addresses among `allowedIps`).
    pub nat: Option<bool>,
    /// Client role: the gateway id (of the resources) this peer is.
    pub gateway_id: Option<String>,
    /// Gateway role: control packets per second this peer may send; past
    /// the budget they are dropped before JavaScript sees them and counted
    /// (`drop_control_rate_limited`). Absent: no limit.
    pub control_per_second: Option<u32>,
    /// The burst allowed above `controlPerSecond` (default: the rate).
    pub control_burst: Option<u32>,
    /// Gateway role: live NAT sessions of this client at most (default 65,536).
    pub max_sessions: Option<u32>,
}

/// A mapping of one proxy IP of one client (gateway role).
#[napi(object)]
pub struct MappingOptions {
    /// The real address, of the proxy IP's family; absent while the domain
    /// has none (traffic then gets ICMP unreachable and `resolve-unmapped`).
    pub real_ip: Option<String>,
    /// Milliseconds until the DNS answer behind `realIp` expires.
    pub ttl_ms: Option<f64>,
    /// What the resource allows: `tcp/443`, `udp/5000-5999`, `icmp`; absent
    /// means everything.
    pub ports: Option<Vec<String>>,
}

/// A peer as seen now.
#[napi(object)]
pub struct PeerStatus {
    pub public_key: String,
    pub endpoint: Option<String>,
    pub up: bool,
    /// Milliseconds since the last completed handshake.
    pub last_handshake_ms_ago: Option<f64>,
    pub tx_bytes: f64,
    pub rx_bytes: f64,
}

#[napi]
pub struct Tunnel {
    shared: Option<Arc<Shared>>,
    packets: Option<PacketThreads>,
    tasks: Tasks,
    name: String,
    local_port: u32,
    offload: bool,
}

#[napi]
impl Tunnel {
    /// Creates the device, binds the socket and starts the loops. `onEvents`
    /// receives batches of control events until `stop()`.
    #[napi(factory)]
    pub async fn create(
        options: TunnelOptions,
        // Spelled out, not the alias: the generated index.d.ts reads the type.
        on_events: napi::threadsafe_function::ThreadsafeFunction<
            Vec<TunnelEvent>,
            (),
            Vec<TunnelEvent>,
            Status,
            false,
            false,
            { events::CALLBACK_QUEUE },
        >,
    ) -> Result<Tunnel> {
        let secret =
            keys::parse_private(&options.private_key).map_err(|e| invalid(e.to_string()))?;
        let ipv4: Ipv4Addr = options.ipv4.parse().map_err(|_| {
            invalid(format!(
                "ipv4: expected an IPv4 address, got '{}'",
                options.ipv4
            ))
        })?;
        let ipv6: Option<Ipv6Addr> = match &options.ipv6 {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| invalid(format!("ipv6: expected an IPv6 address, got '{s}'")))?,
            ),
            None => None,
        };
        let routes = options
            .routes
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r.parse::<Cidr>()
                    .map_err(|e| invalid(format!("routes: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mtu = match options.mtu {
            None => TUN_MTU,
            Some(m) => u16::try_from(m)
                .ok()
                .filter(|m| *m >= 1280)
                .ok_or_else(|| invalid(format!("mtu: expected 1280..=65535, got {m}")))?,
        };
        let listen: SocketAddr = options
            .listen
            .as_deref()
            .unwrap_or("0.0.0.0:0")
            .parse()
            .map_err(|_| invalid("listen: expected host:port, e.g. 0.0.0.0:51820"))?;

        let name_idle_ms = match options.client.as_ref().and_then(|c| c.name_idle_ms) {
            None => DEFAULT_NAME_IDLE_MS,
            Some(ms) if ms.is_finite() && ms >= 1.0 => ms as u64,
            Some(ms) => {
                return Err(invalid(format!(
                    "client.nameIdleMs: expected a positive number of milliseconds, got {ms}"
                )));
            }
        };
        let (client, extra_addresses, mut routes) = match options.client {
            Some(c) => {
                let own: Vec<IpAddr> = std::iter::once(IpAddr::V4(ipv4))
                    .chain(ipv6.map(IpAddr::V6))
                    .collect();
                let role = client_role(c, own)?;
                let mut routes = routes;
                routes.push(Cidr {
                    addr: IpAddr::V4(PROXY_V4_NET),
                    prefix: PROXY_V4_PREFIX,
                });
                routes.push(Cidr {
                    addr: IpAddr::V6(PROXY_V6_NET),
                    prefix: PROXY_V6_PREFIX,
                });
                let extra = vec![IpAddr::V4(SENTINEL_V4), IpAddr::V6(SENTINEL_V6)];
                (Some(role), extra, routes)
            }
            None => (None, Vec::new(), routes),
        };
        routes.dedup();
        // The device belongs to the outbound packet thread's runtime, the
        // socket to the inbound one's; see packet_threads.rs. Nothing here
        // awaits while inside either.
        let packets = PacketRuntimes::new()
            .map_err(|e| Error::from_reason(format!("cannot start the packet threads: {e}")))?;
        let socket = {
            let _inside = packets.enter_inbound();
            bind_tunnel_socket(listen)?
        };
        let device = {
            let _inside = packets.enter_outbound();
            device::create(&device::DeviceConfig {
                name: &options.name,
                mtu,
                ipv4,
                ipv6,
                routes: &routes,
                extra_addresses: &extra_addresses,
                offload: options.offload.unwrap_or(true),
            })
            .map_err(|e| Error::from_reason(e.to_string()))?
        };
        let local_port = u32::from(socket.local_addr()?.port());
        let offload = device.tcp_gso();

        let counters = Arc::new(Counters::default());
        let (events, delivery) = events::delivery(on_events, counters.clone());
        let shared = Arc::new(Shared::new(
            secret,
            socket,
            device,
            events,
            client.as_ref().map(|(role, _)| role.clone()),
            usize::from(mtu),
        ));
        let packets = PacketThreads::start(packets, shared.clone())
            .map_err(|e| Error::from_reason(format!("cannot start the packet threads: {e}")))?;
        let mut tasks = Tasks::new();
        tasks.spawn(delivery);
        tasks.spawn(loops::timers(shared.clone()));
        if let Some((role, listen)) = client {
            // On the sentinels (the default) the stub's sockets are bound to
            // the tunnel device, which holds those addresses: the host's own
            // queries arrive on it, a LAN neighbour's (routed to the sentinel
            // through this host) arrive on the LAN interface and never reach
            // the stub; the tunnel delivers only packets for our tunnel
            // address. See docs/decisions.md, "The stub serves only its host".
            let device = listen.on_sentinels.then_some(options.name.as_str());
            for addr in listen.addrs {
                let (udp, tcp) = dns_server::bind(addr, device)
                    .map_err(|e| Error::from_reason(format!("DNS stub: {e}")))?;
                let udp = io::BatchSocket::new(udp).map_err(|e| {
                    Error::from_reason(format!("DNS stub cannot set up udp {addr}: {e}"))
                })?;
                tasks.spawn(dns_server::serve_udp(role.clone(), Arc::new(udp)));
                tasks.spawn(dns_server::serve_tcp(role.clone(), tcp));
            }
            tasks.spawn(dns_server::age_names(role.clone(), name_idle_ms));
            tasks.spawn(dns_server::pump_events(role, shared.events.clone()));
        }
        Ok(Tunnel {
            shared: Some(shared),
            packets: Some(packets),
            tasks,
            name: options.name,
            local_port,
            offload,
        })
    }

    fn shared(&self) -> Result<&Arc<Shared>> {
        self.shared
            .as_ref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "tunnel is stopped"))
    }

    /// Name of the TUN device.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The UDP port the tunnel listens on (useful with port 0).
    #[napi(getter)]
    pub fn local_port(&self) -> u32 {
        self.local_port
    }

    /// Whether the device runs with offloads (TCP bursts per read and
    /// write); false when they were turned off or the kernel lacks them.
    #[napi(getter)]
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Our public key, base64.
    #[napi(getter)]
    pub fn public_key(&self) -> Result<String> {
        Ok(keys::encode(self.shared()?.public.as_bytes()))
    }

    /// Adds a peer, or replaces the one with the same key.
    #[napi]
    pub fn add_peer(&self, peer: PeerOptions) -> Result<()> {
        let shared = self.shared()?;
        let public_key =
            keys::parse_public(&peer.public_key).map_err(|e| invalid(e.to_string()))?;
        let allowed = peer
            .allowed_ips
            .iter()
            .map(|r| {
                r.parse::<Cidr>()
                    .map_err(|e| invalid(format!("allowedIps: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let endpoint = match &peer.endpoint {
            Some(e) => Some(
                e.parse::<SocketAddr>()
                    .map_err(|_| invalid(format!("endpoint: expected host:port, got '{e}'")))?,
            ),
            None => None,
        };
        let keepalive = peer
            .persistent_keepalive
            .map(|k| {
                u16::try_from(k).map_err(|_| invalid("persistentKeepalive: expected 0..=65535"))
            })
            .transpose()?
            .filter(|k| *k > 0);
        shared.add_peer(PeerSpec {
            public_key,
            endpoint,
            allowed,
            keepalive,
            nat: peer.nat.unwrap_or(false),
            gateway_id: peer.gateway_id,
            control_budget: peer
                .control_per_second
                .map(|rate| (rate, peer.control_burst.unwrap_or(rate))),
            max_sessions: peer.max_sessions.map(|m| m as usize),
        });
        Ok(())
    }

    fn nat_peer(&self, public_key: &str) -> Result<Arc<Peer>> {
        let key = keys::parse_public(public_key).map_err(|e| invalid(e.to_string()))?;
        let peer = self
            .shared()?
            .peers()
            .by_key(key.as_bytes())
            .ok_or_else(|| invalid(format!("unknown peer {public_key}")))?;
        if peer.nat.is_none() {
            return Err(invalid(format!("peer {public_key} was added without nat")));
        }
        Ok(peer)
    }

    /// Installs or replaces the mapping of `proxyIp` for a NAT peer. A new
    /// real address applies to new sessions; live ones keep theirs.
    #[napi]
    pub fn set_mapping(
        &self,
        public_key: String,
        proxy_ip: String,
        mapping: MappingOptions,
    ) -> Result<()> {
        let shared = self.shared()?;
        let peer = self.nat_peer(&public_key)?;
        let proxy: IpAddr = proxy_ip
            .parse()
            .map_err(|_| invalid(format!("proxyIp: expected an IP address, got '{proxy_ip}'")))?;
        let real = match &mapping.real_ip {
            Some(r) => Some(
                r.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("realIp: expected an IP address, got '{r}'")))?,
            ),
            None => None,
        };
        let filter = match &mapping.ports {
            None => PortFilter::Any,
            Some(list) => PortFilter::Rules(
                list.iter()
                    .map(|p| {
                        p.parse::<PortRule>()
                            .map_err(|e| invalid(format!("ports: '{p}': {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let now = shared.now();
        let expires_at = match mapping.ttl_ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => {
                Some(now + std::time::Duration::from_millis(ms as u64))
            }
            Some(ms) => {
                return Err(invalid(format!(
                    "ttlMs: expected a non-negative number, got {ms}"
                )));
            }
            None => None,
        };
        let nat = peer.nat.as_ref().expect("checked by nat_peer");
        nat.lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_mapping(
                proxy,
                Mapping {
                    real,
                    filter,
                    expires_at,
                },
                now,
            )
            .map_err(|e| invalid(format!("proxyIp {proxy_ip}: {e}")))
    }

    /// Runs `f` on the NAT of a peer, for one of its proxy IPs, at the tunnel's now.
    fn with_proxy<T>(
        &self,
        public_key: &str,
        proxy_ip: &str,
        f: impl FnOnce(&mut ClientNat, IpAddr, Timestamp) -> T,
    ) -> Result<T> {
        let now = self.shared()?.now();
        let peer = self.nat_peer(public_key)?;
        let proxy: IpAddr = proxy_ip
            .parse()
            .map_err(|_| invalid(format!("proxyIp: expected an IP address, got '{proxy_ip}'")))?;
        let nat = peer.nat.as_ref().expect("checked by nat_peer");
        Ok(f(
            &mut nat.lock().unwrap_or_else(|e| e.into_inner()),
            proxy,
            now,
        ))
    }

    /// Removes a mapping and every session through it; true if it existed.
    #[napi]
    pub fn remove_mapping(&self, public_key: String, proxy_ip: String) -> Result<bool> {
        self.with_proxy(&public_key, &proxy_ip, |nat, proxy, now| {
            nat.remove_mapping(proxy, now)
        })
    }

    /// Milliseconds the mapping of `proxyIp` has gone unused: 0 while a NAT
    /// session goes through it, else since it was installed or last opened a
    /// session; null without a mapping. The policy expires idle bindings by it.
    #[napi]
    pub fn mapping_idle_ms(&self, public_key: String, proxy_ip: String) -> Result<Option<f64>> {
        self.with_proxy(&public_key, &proxy_ip, |nat, proxy, now| {
            nat.idle_for(proxy, now).map(|d| d.as_secs_f64() * 1000.0)
        })
    }

    /// Live NAT sessions of a NAT peer.
    #[napi]
    pub fn nat_sessions(&self, public_key: String) -> Result<u32> {
        let peer = self.nat_peer(&public_key)?;
        let nat = peer.nat.as_ref().expect("checked by nat_peer");
        let n = nat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .session_count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Forgets a peer's WireGuard sessions, so the next packet to it starts a
    /// new handshake at once. For a peer known to have restarted (it said
    /// Goodbye): otherwise WireGuard notices only after its keepalive and
    /// rekey timeouts (about 15 s) that its session is gone.
    #[napi]
    pub fn reset_peer(&self, public_key: String) -> Result<bool> {
        let shared = self.shared()?;
        let key = keys::parse_public(&public_key).map_err(|e| invalid(e.to_string()))?;
        let Some(peer) = shared.peers().by_key(key.as_bytes()) else {
            return Ok(false);
        };
        let keepalive = {
            let tunn = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            tunn.persistent_keepalive()
        };
        let fresh = Tunn::new(
            shared.secret.clone(),
            key,
            None,
            keepalive,
            peer.index,
            None,
        );
        *peer.tunn.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        peer.up.store(false, Ordering::Relaxed);
        Ok(true)
    }

    /// Removes a peer; true if it existed.
    #[napi]
    pub fn remove_peer(&self, public_key: String) -> Result<bool> {
        let key = keys::parse_public(&public_key).map_err(|e| invalid(e.to_string()))?;
        Ok(self.shared()?.peers_mut().remove(key.as_bytes()).is_some())
    }

    /// Sends a control message (docs/architecture.md#control-protocol) to a peer through the tunnel.
    #[napi]
    pub fn send_control(&self, public_key: String, message_type: u32, body: String) -> Result<()> {
        let shared = self.shared()?;
        let key = keys::parse_public(&public_key).map_err(|e| invalid(e.to_string()))?;
        let kind = u8::try_from(message_type)
            .map(MessageType::from_byte)
            .map_err(|_| invalid("messageType: expected 0..=255"))?;
        let packet = control::build(kind, &body).map_err(|e| invalid(e.to_string()))?;
        let peer = shared
            .peers()
            .by_key(key.as_bytes())
            .ok_or_else(|| invalid(format!("unknown peer {public_key}")))?;
        shared.send_to_peer(&peer, &packet);
        counters::inc(&shared.counters.control_tx);
        Ok(())
    }

    fn client(&self) -> Result<&Arc<ClientRole>> {
        self.shared()?
            .client
            .as_ref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "tunnel has no client role"))
    }

    fn key(gateway_id: String, domain: String, resource_id: String) -> NatKey {
        NatKey {
            gateway: gateway_id,
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            resource: resource_id,
        }
    }

    /// Client: `buffer` or `pass` packets of a key.
    #[napi]
    pub fn gate(
        &self,
        gateway_id: String,
        domain: String,
        resource_id: String,
        mode: String,
    ) -> Result<()> {
        let mode = match mode.as_str() {
            "buffer" => GateMode::Buffer,
            "pass" => GateMode::Pass,
            other => {
                return Err(invalid(format!(
                    "mode: expected 'buffer' or 'pass', got '{other}'"
                )));
            }
        };
        let client = self.client()?;
        if let Some(id) = client.key_id(Self::key(gateway_id, domain, resource_id)) {
            client.gates().set_mode(id, mode);
        }
        Ok(())
    }

    /// Client: sends the key's buffered packets, in order; returns how many.
    #[napi]
    pub fn flush(&self, gateway_id: String, domain: String, resource_id: String) -> Result<u32> {
        let shared = self.shared()?;
        let client = self.client()?;
        let Some(id) = client.key_id(Self::key(gateway_id, domain, resource_id)) else {
            return Ok(0);
        };
        let n = shared.flush_key(client, id);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Client: drops the key's buffered packets; returns how many.
    #[napi]
    pub fn discard(&self, gateway_id: String, domain: String, resource_id: String) -> Result<u32> {
        let client = self.client()?;
        let Some(id) = client.key_id(Self::key(gateway_id, domain, resource_id)) else {
            return Ok(0);
        };
        let n = client.gates().discard(&id);
        client
            .counters
            .discarded
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Client: forgets the gates (and buffers) of a gateway or a resource.
    #[napi]
    pub fn clear_gates(
        &self,
        gateway_id: Option<String>,
        resource_id: Option<String>,
    ) -> Result<u32> {
        let client = self.client()?;
        let ids = client.key_ids_where(|k| {
            gateway_id.as_ref().is_some_and(|g| *g == k.gateway)
                || resource_id.as_ref().is_some_and(|r| *r == k.resource)
        });
        let n = client.gates().remove_where(|id| ids.contains(id));
        client
            .counters
            .discarded
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Client: replaces the resources (configuration reload).
    #[napi]
    pub fn set_resources(&self, resources: Vec<ResourceSpec>) -> Result<()> {
        let client = self.client()?;
        let table = table::resource_table(&resources).map_err(invalid)?;
        client.stub().set_resources(table);
        client.invalidate_routes();
        Ok(())
    }

    /// Client: the proxy IPs of `domain` (IPv4 first), if it holds any.
    #[napi]
    pub fn proxy_ips_of(&self, domain: String) -> Result<Option<Vec<String>>> {
        let client = self.client()?;
        let stub = client.stub();
        Ok(stub
            .allocator()
            .get(&domain)
            .map(|ips| ips.iter().map(|ip| ip.to_string()).collect()))
    }

    /// Client: the proxy-IP table as JSON, for the state file.
    #[napi]
    pub fn export_proxy_ips(&self) -> Result<String> {
        Ok(dnsnat_core::dns::proxy_ip_json::table_to_json(
            &self.client()?.stub().export_proxy_ips(),
        ))
    }

    /// Client: the rows of the seeded proxy-IP table that were left out
    /// (damaged or conflicting), each with its reason.
    #[napi]
    pub fn proxy_ip_table_rejections(&self) -> Result<Vec<String>> {
        Ok(self.client()?.seed_rejections.clone())
    }

    /// Every counter by name.
    #[napi]
    pub fn counters(&self) -> Result<HashMap<String, f64>> {
        Ok(self
            .shared()?
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v as f64))
            .chain(
                self.shared()?
                    .nat_drops
                    .snapshot()
                    .into_iter()
                    .map(|(k, v)| (k, v as f64)),
            )
            .chain(self.client_counters())
            .collect())
    }

    fn client_counters(&self) -> Vec<(String, f64)> {
        let Ok(client) = self.client() else {
            return Vec::new();
        };
        let c = &client.counters;
        let (stats, names, names_stats) = {
            let stub = client.stub();
            (
                stub.stats(),
                stub.allocator().len(),
                stub.allocator().stats(),
            )
        };
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        vec![
            (
                "client_dns_upstream_failures".into(),
                get(&c.dns_upstream_failures),
            ),
            (
                "client_drop_unknown_proxy_ip".into(),
                get(&c.drop_unknown_proxy_ip),
            ),
            ("client_drop_no_gateway".into(), get(&c.drop_no_gateway)),
            ("client_names".into(), names as f64),
            ("client_names_evicted".into(), names_stats.evicted as f64),
            ("client_names_expired".into(), names_stats.expired as f64),
            ("client_proxy_ips_reused".into(), names_stats.reused as f64),
            (
                "client_proxy_ips_reused_early".into(),
                names_stats.reused_early as f64,
            ),
            ("client_gate_keys".into(), client.key_count() as f64),
            ("client_buffered".into(), get(&c.buffered)),
            ("client_buffer_overflow".into(), get(&c.buffer_overflow)),
            ("client_flushed".into(), get(&c.flushed)),
            ("client_discarded".into(), get(&c.discarded)),
            ("client_drop_not_for_us".into(), get(&c.drop_not_for_us)),
            (
                "client_drop_proxy_source_not_served".into(),
                get(&c.drop_proxy_source_not_served),
            ),
            ("dns_forwards_refused".into(), get(&c.dns_forwards_refused)),
            ("dns_tcp_refused".into(), get(&c.dns_tcp_refused)),
            ("dns_socket_errors".into(), get(&c.dns_socket_errors)),
            ("dns_queries".into(), stats.queries as f64),
            ("dns_answered".into(), stats.answered as f64),
            ("dns_forwarded".into(), stats.forwarded as f64),
            ("dns_resource_queries".into(), stats.resource_queries as f64),
            ("dns_formerr".into(), stats.formerr as f64),
            (
                "dns_dropped_unreadable".into(),
                stats.dropped_unreadable as f64,
            ),
            ("dns_truncated".into(), stats.truncated as f64),
        ]
    }

    /// The peers and their handshake state.
    #[napi]
    pub fn peers(&self) -> Result<Vec<PeerStatus>> {
        let shared = self.shared()?;
        let peers = shared.peers();
        Ok(peers
            .all()
            .map(|p| {
                let tunn = p.tunn.lock().unwrap_or_else(|e| e.into_inner());
                let (since, tx, rx, _, _) = tunn.stats();
                PeerStatus {
                    public_key: p.public_b64.clone(),
                    endpoint: p.endpoint().map(|e| e.to_string()),
                    up: p.up.load(Ordering::Relaxed),
                    last_handshake_ms_ago: since.map(|d| d.as_secs_f64() * 1000.0),
                    tx_bytes: tx as f64,
                    rx_bytes: rx as f64,
                }
            })
            .collect())
    }

    /// Stops the loops, closes the socket, removes the device and releases the
    /// event callback so Node can exit; all of it done when this returns, so
    /// a tunnel of the same name and port can be created at once. Idempotent.
    #[napi]
    pub fn stop(&mut self) {
        if let Some(mut packets) = self.packets.take() {
            packets.stop();
        }
        self.shared = None;
        // The last holders of the shared state, the device in it included.
        // Past the limit (a runtime stuck in other work) stop returns anyway;
        // the device then goes when the runtime gets to the aborted tasks.
        let _all_gone = self.tasks.stop(STOP_LIMIT);
    }
}

/// The tunnel's UDP socket, bound synchronously so that it registers with
/// the runtime entered by the caller (the inbound packet thread's).
fn bind_tunnel_socket(listen: SocketAddr) -> Result<io::BatchSocket> {
    let std_socket = std::net::UdpSocket::bind(listen)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .map_err(|e| Error::from_reason(format!("cannot listen on {listen}: {e}")))?;
    // WireGuard traffic arrives in bursts; with the kernel's default buffers
    // (~208 KiB) the benchmark saw more than half of a UDP burst dropped
    // before the loop read it. Ask for what wireguard-go asks for; the kernel
    // caps it at net.core.[rw]mem_max without an error.
    let sock = socket2::SockRef::from(&std_socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    tokio::net::UdpSocket::from_std(std_socket)
        .and_then(io::BatchSocket::new)
        .map_err(|e| Error::from_reason(format!("cannot set up the socket on {listen}: {e}")))
}

fn parse_socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

/// Where the stub listens.
struct StubListen {
    addrs: Vec<SocketAddr>,
    /// The default: the sentinel addresses on the tunnel device.
    on_sentinels: bool,
}

/// Builds the client role from its options; the listen addresses come back
/// separately because they can be bound only once the device has them.
fn client_role(c: ClientOptions, tunnel_ips: Vec<IpAddr>) -> Result<(Arc<ClientRole>, StubListen)> {
    let resources =
        table::resource_table(&c.resources).map_err(|e| invalid(format!("client.{e}")))?;
    let mut seed_rejections = Vec::new();
    let allocator = match &c.proxy_ip_table {
        None => ProxyIpAllocator::new(),
        // Neither a damaged row nor an unreadable table is fatal: the client
        // must start from whatever a crash or a bad disk left (JavaScript
        // logs what was left out); names then get new proxy IPs.
        Some(json) => match dnsnat_core::dns::proxy_ip_json::table_from_json(json) {
            Ok(t) => {
                let (allocator, rejected) = ProxyIpAllocator::seed(&t);
                seed_rejections = rejected.iter().map(ToString::to_string).collect();
                allocator
            }
            Err(e) => {
                seed_rejections = vec![format!("the whole table, unreadable: {e}")];
                ProxyIpAllocator::new()
            }
        },
    };
    let upstream = c
        .upstream
        .iter()
        .map(|u| {
            parse_socket_addr(u, 53).ok_or_else(|| {
                invalid(format!(
                    "client.upstream: expected ip or ip:port, got '{u}'"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let addrs = match &c.dns_listen {
        None => vec![
            SocketAddr::new(IpAddr::V4(SENTINEL_V4), 53),
            SocketAddr::new(IpAddr::V6(SENTINEL_V6), 53),
        ],
        Some(list) => list
            .iter()
            .map(|l| {
                parse_socket_addr(l, 53).ok_or_else(|| {
                    invalid(format!(
                        "client.dnsListen: expected ip or ip:port, got '{l}'"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let listen = StubListen {
        addrs,
        on_sentinels: c.dns_listen.is_none(),
    };
    let mut stub = Stub::new(resources, allocator, StubOptions::default());
    if let Some(max) = c.max_names {
        if max == 0 {
            return Err(invalid("client.maxNames: expected at least 1"));
        }
        stub.set_max_domains(max as usize);
    }
    let mut role = ClientRole::new(stub, upstream);
    role.tunnel_ips = tunnel_ips;
    role.seed_rejections = seed_rejections;
    Ok((Arc::new(role), listen))
}
