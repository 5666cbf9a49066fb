//! LimitRange admission for containers, as Kubernetes' LimitRanger plugin does it: unset requests and
//! limits get the range's `defaultRequest` and `default`, then each container's are checked against
//! `min`, `max` and `maxLimitRequestRatio`, with the plugin's wording.

use serde_json::{Value, json};

use crate::scheduling::quantity::parse_milli;

fn quantity(v: Option<&Value>) -> Option<i128> {
    v.and_then(Value::as_str).and_then(parse_milli)
}

fn q_str(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Applies the `Container` items of `ranges` to a new pod's containers; returns the annotation
/// value naming what was set (empty when nothing was) or the refusals.
pub fn admit_pod(ranges: &[Value], pod: &mut Value) -> Result<String, Vec<String>> {
    let items: Vec<&Value> = ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("Container"))
        .collect();
    let mut set = Vec::new();
    let mut errors = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            for item in &items {
                for (from, part, what) in [
                    ("defaultRequest", "requests", "request"),
                    ("default", "limits", "limit"),
                ] {
                    for (res, v) in item
                        .get(from)
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        if c.pointer(&format!("/resources/{part}/{res}")).is_none() {
                            if c.get("resources").is_none_or(|r| !r.is_object()) {
                                c["resources"] = json!({});
                            }
                            if c["resources"].get(part).is_none_or(|p| !p.is_object()) {
                                c["resources"][part] = json!({});
                            }
                            c["resources"][part][res] = v.clone();
                            set.push(format!(
                                "{res} {what} for {} {name}",
                                if list == "containers" {
                                    "container"
                                } else {
                                    "init container"
                                }
                            ));
                        }
                    }
                }
                // bounds after the defaults; a container with only a limit requests its limit
                check(item, c, &mut errors);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(if set.is_empty() {
        String::new()
    } else {
        format!("LimitRanger plugin set: {}", set.join("; "))
    })
}

fn check(item: &Value, c: &Value, errors: &mut Vec<String>) {
    let get = |part: &str, res: &str| quantity(c.pointer(&format!("/resources/{part}/{res}")));
    for (res, min) in item
        .get("min")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let m = quantity(Some(min)).unwrap_or(0);
        match get("requests", res).or_else(|| get("limits", res)) {
            None => errors.push(format!(
                "minimum {res} usage per Container is {}.  No request is specified",
                q_str(min)
            )),
            Some(r) if r < m => errors.push(format!(
                "minimum {res} usage per Container is {}, but request is {}",
                q_str(min),
                q_str(
                    c.pointer(&format!("/resources/requests/{res}"))
                        .or_else(|| c.pointer(&format!("/resources/limits/{res}")))
                        .unwrap_or(&Value::Null)
                )
            )),
            _ => {}
        }
    }
    for (res, max) in item
        .get("max")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let m = quantity(Some(max)).unwrap_or(0);
        match get("limits", res) {
            None => errors.push(format!(
                "maximum {res} usage per Container is {}.  No limit is specified",
                q_str(max)
            )),
            Some(l) if l > m => errors.push(format!(
                "maximum {res} usage per Container is {}, but limit is {}",
                q_str(max),
                q_str(&c["resources"]["limits"][res])
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_bounds() {
        let range = json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]}});
        let mut pod = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "128Mi"}}}]}});
        let note = admit_pod(std::slice::from_ref(&range), &mut pod).unwrap();
        assert_eq!(
            note,
            "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"memory": "128Mi", "cpu": "100m"}, "limits": {"cpu": "500m"}})
        );
        let mut big = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "32Mi"}}}]}});
        assert_eq!(
            admit_pod(&[range], &mut big).unwrap_err(),
            [
                "minimum memory usage per Container is 64Mi, but request is 32Mi",
                "maximum cpu usage per Container is 1, but limit is 2"
            ]
        );
    }
}
