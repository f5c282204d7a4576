//! What the agent knows of a node: its name, addresses and pod subnets, read from a
//! Kubernetes `Node` (from the API or from a NodeList file alike).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

/// One node of the cluster, as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `status.addresses` of type InternalIP, in order.
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<IpNet>,
    /// `metadata.creationTimestamp`, in Unix seconds (a NodeList file may lack it). Decides
    /// which of two Nodes claiming the same addresses keeps them (see `claims`).
    pub created: Option<i64>,
}

impl NodeInfo {
    /// Reads the fields routing needs; bad entries are skipped with a warning, never fatal.
    pub fn from_node(node: &Node) -> Option<NodeInfo> {
        let name = node.metadata.name.clone()?;
        let spec = node.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        if cidrs.is_empty() {
            cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        }
        let pod_cidrs = cidrs
            .iter()
            .filter_map(|c| match c.parse::<IpNet>() {
                Ok(net) => Some(net.trunc()),
                Err(_) => {
                    tracing::warn!(node = %name, cidr = %c, "ignoring a pod CIDR that does not parse");
                    None
                }
            })
            .collect();
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|list| {
                list.iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .filter_map(|a| a.address.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let created = node
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second());
        Some(NodeInfo {
            name,
            addresses,
            pod_cidrs,
            created,
        })
    }

    /// The node's first InternalIP of the given family.
    pub fn address(&self, v6: bool) -> Option<IpAddr> {
        self.addresses.iter().copied().find(|a| a.is_ipv6() == v6)
    }
}

/// Why a text is not a NodeList: the parser's own words.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// As JSON (the text starts with `{`).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// As YAML.
    #[error(transparent)]
    Yaml(#[from] serde_saphyr::Error),
}

/// Parses a NodeList (JSON or YAML) into nodes, sorted by name. Only the fields routing
/// needs are decoded (the rest of each Node is skipped), and JSON takes the fast JSON parser:
/// a 5000-node list is read in a few milliseconds.
pub fn parse_node_list(text: &str) -> Result<Vec<NodeInfo>, ParseError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        items: Vec<Node>,
    }
    let list: List = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)?
    } else {
        serde_saphyr::from_str(text)?
    };
    let mut nodes: Vec<NodeInfo> = list.items.iter().filter_map(NodeInfo::from_node).collect();
    nodes.sort();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_node_list_in_json_and_yaml() {
        let json = r#"{"apiVersion":"v1","kind":"NodeList","items":[
          {"metadata":{"name":"b"},"spec":{"podCIDR":"10.244.2.0/24"},
           "status":{"addresses":[{"type":"Hostname","address":"b"},{"type":"InternalIP","address":"192.168.49.3"}]}},
          {"metadata":{"name":"a","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"podCIDRs":["10.244.1.0/24","fd00:244:1::/64"]},
           "status":{"addresses":[{"type":"InternalIP","address":"192.168.49.2"}]}}]}"#;
        let nodes = parse_node_list(json).unwrap();
        assert_eq!(nodes[0].name, "a");
        assert_eq!(nodes[0].pod_cidrs.len(), 2);
        assert_eq!(nodes[0].created, Some(1_714_557_600));
        assert_eq!(nodes[1].created, None);
        assert_eq!(nodes[1].pod_cidrs[0].to_string(), "10.244.2.0/24");
        assert_eq!(nodes[1].address(false).unwrap().to_string(), "192.168.49.3");
        let yaml = "items:\n- metadata: {name: c}\n  spec: {podCIDR: 10.244.3.0/24}\n";
        let nodes = parse_node_list(yaml).unwrap();
        assert!(nodes[0].addresses.is_empty());
        assert!(parse_node_list("items: [").is_err());
    }

    #[test]
    fn reads_a_yaml_list_of_5000_nodes_within_the_parsers_limits() {
        let mut yaml = String::from("apiVersion: v1\nkind: NodeList\nitems:\n");
        for i in 0..5000u32 {
            let (hi, lo) = (i / 250, i % 250 + 1);
            yaml.push_str(&format!(
                "- metadata:\n    name: node-{i}\n    creationTimestamp: \"2024-05-01T10:00:00Z\"\n  \
                 spec:\n    podCIDR: 10.{hi}.{lo}.0/24\n  status:\n    addresses:\n    \
                 - type: InternalIP\n      address: 192.168.{hi}.{lo}\n"
            ));
        }
        let nodes = parse_node_list(&yaml).unwrap();
        assert_eq!(nodes.len(), 5000);
        assert!(nodes
            .iter()
            .all(|n| n.pod_cidrs.len() == 1 && n.addresses.len() == 1));
    }
}
