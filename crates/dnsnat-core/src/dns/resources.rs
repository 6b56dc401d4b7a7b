//! Resources as the stub sees them, and the lookup of the resources serving a name.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::pattern::{Pattern, PatternSet};

/// Which address families a resource serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpStack {
    #[default]
    Dual,
    Ipv4,
    Ipv6,
}

impl IpStack {
    pub fn has_v4(self) -> bool {
        matches!(self, Self::Dual | Self::Ipv4)
    }

    pub fn has_v6(self) -> bool {
        matches!(self, Self::Dual | Self::Ipv6)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dual => "dual",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for IpStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpStack {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dual" => Ok(Self::Dual),
            "ipv4" => Ok(Self::Ipv4),
            "ipv6" => Ok(Self::Ipv6),
            other => Err(ResourceError::BadIpStack(other.to_owned())),
        }
    }
}

/// A DNS resource: a pattern served by one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: String,
    pub gateway_id: String,
    pub pattern: Pattern,
    pub ip_stack: IpStack,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource id `{0}` is used more than once")]
    DuplicateId(String),
    #[error("ipStack must be `dual`, `ipv4` or `ipv6`, found `{0}`")]
    BadIpStack(String),
}

/// The resources of the client, indexed for lookup by name.
///
/// Several resources may share one pattern (for example two gateways, or two
/// port filters); they are all "the match". Among different matching patterns
/// only the most specific one counts (docs/architecture.md#one-dns-query), so a more specific
/// resource shadows a broader one completely for the names it covers.
#[derive(Debug, Default)]
pub struct ResourceTable {
    resources: Vec<Resource>,
    /// Per distinct pattern: the indices of its resources.
    set: PatternSet<Vec<usize>>,
}

impl ResourceTable {
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Result<Self, ResourceError> {
        let resources: Vec<Resource> = resources.into_iter().collect();
        let mut ids = HashMap::new();
        let mut by_pattern: HashMap<&str, usize> = HashMap::new();
        let mut set: PatternSet<Vec<usize>> = PatternSet::new();
        for (i, r) in resources.iter().enumerate() {
            if ids.insert(r.id.as_str(), i).is_some() {
                return Err(ResourceError::DuplicateId(r.id.clone()));
            }
            match by_pattern.get(r.pattern.as_str()) {
                Some(&entry) => set.value_mut(entry).push(i),
                None => {
                    let entry = set.insert(r.pattern.clone(), vec![i]);
                    by_pattern.insert(r.pattern.as_str(), entry);
                }
            }
        }
        Ok(Self { resources, set })
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// The resources of the most specific pattern matching `name` (lower-case
    /// labels, left to right), in configuration order; empty if none matches.
    pub fn lookup(&self, name: &[&[u8]]) -> impl Iterator<Item = &Resource> + '_ {
        self.lookup_indices(name)
            .iter()
            .map(|&i| &self.resources[i])
    }

    /// [`Self::lookup`] as indices into [`Self::resources`].
    pub fn lookup_indices(&self, name: &[&[u8]]) -> &[usize] {
        match self.set.best(name) {
            Some(e) => self.set.entry(e).1,
            None => &[],
        }
    }

    /// [`Self::lookup`] for a presentation-format domain.
    pub fn lookup_domain(&self, domain: &str) -> Vec<&Resource> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let lower = domain.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
        self.lookup(&labels).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn res(id: &str, gw: &str, pattern: &str, stack: IpStack) -> Resource {
        Resource {
            id: id.into(),
            gateway_id: gw.into(),
            pattern: Pattern::parse(pattern).unwrap(),
            ip_stack: stack,
        }
    }

    fn ids(t: &ResourceTable, domain: &str) -> Vec<String> {
        t.lookup_domain(domain)
            .into_iter()
            .map(|r| r.id.clone())
            .collect()
    }

    #[test]
    fn most_specific_pattern_wins_and_shadows_broader_ones() {
        let t = ResourceTable::new([
            res("wild", "gw1", "**.corp.example", IpStack::Dual),
            res("star", "gw1", "*.corp.example", IpStack::Dual),
            res("exact", "gw2", "secret.corp.example", IpStack::Ipv4),
        ])
        .unwrap();
        assert_eq!(ids(&t, "secret.corp.example"), ["exact"]);
        assert_eq!(ids(&t, "Other.Corp.Example."), ["star"]);
        assert_eq!(ids(&t, "corp.example"), ["star"]);
        assert_eq!(ids(&t, "a.b.corp.example"), ["wild"]);
        assert!(ids(&t, "corp.example.com").is_empty());
    }

    #[test]
    fn resources_sharing_a_pattern_all_match_in_config_order() {
        let t = ResourceTable::new([
            res("web-a", "gw1", "*.corp.example", IpStack::Dual),
            res("other", "gw1", "*.other.example", IpStack::Dual),
            res("web-b", "gw2", "*.CORP.example.", IpStack::Ipv6),
        ])
        .unwrap();
        assert_eq!(ids(&t, "x.corp.example"), ["web-a", "web-b"]);
    }

    #[test]
    fn duplicate_ids_and_bad_stacks_are_rejected() {
        let err = ResourceTable::new([
            res("a", "gw1", "a.example", IpStack::Dual),
            res("a", "gw1", "b.example", IpStack::Dual),
        ])
        .unwrap_err();
        assert_eq!(err, ResourceError::DuplicateId("a".into()));
        assert_eq!("ipv4".parse::<IpStack>(), Ok(IpStack::Ipv4));
        assert_eq!("dual".parse::<IpStack>(), Ok(IpStack::Dual));
        assert_eq!("ipv6".parse::<IpStack>(), Ok(IpStack::Ipv6));
        assert!("both".parse::<IpStack>().is_err());
    }
}
