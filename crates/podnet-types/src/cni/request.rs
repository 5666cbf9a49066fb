//! The invocation parameters a runtime passes in `CNI_*` environment variables.

use super::error::{CniError, ErrorCode};
use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }
}

/// A validated invocation. Optional parameters are `None` when the command does not need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Vec<(String, String)>,
    pub path: Vec<String>,
    /// Problems in parameters the command does not need, set aside (DEL only; logged by the plugin).
    pub ignored: Vec<CniError>,
}

impl Request {
    /// Reads the parameters through `get` (the process environment in the binary, a map in tests) and
    /// checks what the spec requires for the command. Every missing variable is named at once.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Request, CniError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let command = match var("CNI_COMMAND").as_deref() {
            None => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    "required env variables [CNI_COMMAND] missing",
                ));
            }
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_COMMAND: unknown command {other:?}"),
                ));
            }
        };
        let attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let needs_path = command == Command::Gc;

        let mut missing = Vec::new();
        let container_id = var("CNI_CONTAINERID");
        let netns = var("CNI_NETNS");
        let ifname = var("CNI_IFNAME");
        let path = var("CNI_PATH");
        if attachment && container_id.is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if needs_netns && netns.is_none() {
            missing.push("CNI_NETNS");
        }
        if attachment && ifname.is_none() {
            missing.push("CNI_IFNAME");
        }
        if needs_path && path.is_none() {
            missing.push("CNI_PATH");
        }
        if !missing.is_empty() {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        // DEL must finish whatever it is given (a failed DEL leaves the sandbox stuck: the runtime
        // retries forever). Identifiers ADD would refuse cannot name anything ADD made, and DEL finds
        // its objects by hashes and records of them, so a bad one is noted, not refused; CNI_ARGS only
        // names the pod in messages.
        let lenient = command == Command::Del;
        let mut ignored = Vec::new();
        let mut refuse = |e: CniError| -> Result<(), CniError> {
            if lenient {
                ignored.push(e);
                Ok(())
            } else {
                Err(e)
            }
        };
        if attachment {
            let id = container_id.as_deref().unwrap_or_default();
            if !names::is_valid_cni_identifier(id) {
                refuse(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_CONTAINERID: invalid characters in {id:?}"),
                ))?;
            }
            let ifn = ifname.as_deref().unwrap_or_default();
            if let Err(problem) = names::check_ifname(ifn) {
                refuse(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_IFNAME: {ifn:?} {problem}"),
                ))?;
            }
        }
        let args = match parse_cni_args(var("CNI_ARGS").as_deref().unwrap_or_default()) {
            Ok(args) => args,
            Err(e) => {
                refuse(e)?;
                Vec::new()
            }
        };
        let path = path
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Request {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
            ignored,
        })
    }

    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// How to name the attachment in messages: the Kubernetes pod when the runtime says which
    /// (`pod default/web-1`), else the container.
    pub fn subject(&self) -> String {
        match (self.arg("K8S_POD_NAMESPACE"), self.arg("K8S_POD_NAME")) {
            (Some(ns), Some(name)) => format!("pod {ns}/{name}"),
            _ => format!("container {}", self.container_id.as_deref().unwrap_or("?")),
        }
    }
}

/// `CNI_ARGS` is `K=V;K2=V2`. An entry without `=` is malformed input, reported by name.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, CniError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    CniError::new(
                        ErrorCode::InvalidEnvironment,
                        format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(vars: &[(&str, &str)]) -> Result<Request, CniError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Request::from_env(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let e = req(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"
        );
    }

    #[test]
    fn del_does_not_need_netns() {
        let r = req(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(r.netns, None);
    }

    #[test]
    fn gc_needs_path_and_status_needs_nothing() {
        assert!(req(&[("CNI_COMMAND", "GC")]).is_err());
        assert!(req(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]).is_ok());
        assert!(req(&[("CNI_COMMAND", "STATUS")]).is_ok());
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let base = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ];
        let mut v = base.to_vec();
        v.push(("CNI_CONTAINERID", "-bad"));
        assert!(req(&v).unwrap_err().msg.starts_with("CNI_CONTAINERID:"));
        let e = req(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert!(e.msg.contains("FROB"));
        let mut v = base.to_vec();
        v.push(("CNI_CONTAINERID", "c1"));
        v.push(("CNI_ARGS", "K8S_POD_NAME"));
        assert!(req(&v).unwrap_err().msg.starts_with("CNI_ARGS:"));
    }

    #[test]
    fn subject_names_the_pod_when_known() {
        let r = req(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1",
            ),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(r.subject(), "pod default/web-1");
        assert_eq!(r.path, vec!["/opt/cni/bin", "/usr/lib/cni"]);
    }

    #[test]
    fn del_sets_aside_what_it_does_not_need() {
        let r = req(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-odd id"),
            ("CNI_IFNAME", "an-interface-name-too-long"),
            ("CNI_ARGS", "K8S_POD_NAME"),
        ])
        .unwrap();
        assert_eq!(r.container_id.as_deref(), Some("-odd id"));
        let msgs: Vec<&str> = r.ignored.iter().map(|e| e.msg.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].starts_with("CNI_CONTAINERID:"));
        assert!(msgs[1].starts_with("CNI_IFNAME:"));
        assert!(msgs[2].starts_with("CNI_ARGS:"));
        // Required parameters stay required: without them there is nothing to look for.
        assert!(req(&[("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "eth0")]).is_err());
        // ADD still refuses the same input.
        let e = req(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME"),
        ])
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    }
}
