//! The manifests under `deploy/kubernetes`, rendered by `kubectl kustomize`
//! and checked against what they deploy: valid for the Kubernetes API (and
//! KEDA's CRD) offline, pods locked down and sized, a configuration the
//! server accepts, probes it answers, and autoscaler triggers on the
//! streams and group the host really uses — each Deployment started as the
//! real binary with its own arguments on a harness Redis.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::cli::warmlane;
use crate::redis_server::RedisServer;
use crate::serve::Serve;
use crate::support;

/// Every kustomization an operator applies.
const INSTALLS: [&str; 4] = ["base", "overlays/keda", "overlays/hpa", "overlays/single"];

/// A `PYTHONPATH` under which `kubernetes_validate` imports.
fn validator() -> &'static Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        support::python_path(
            "kubernetes-validate",
            "import kubernetes_validate, jsonschema, yaml",
            "kubernetes-validate>=1.31",
        )
    })
}

/// `deploy/kubernetes/DIR` rendered and validated: its objects.
fn render(dir: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}); install it: apt-get install kubectl (or any kubectl 1.27+)")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/manifests.py");
    let mut check = Command::new("python3");
    if let Some(path) = validator() {
        check.env("PYTHONPATH", path);
    }
    let mut check = check
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), &out.stdout).unwrap();
    let checked = check.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success(),
        "deploy/kubernetes/{dir} does not validate:\n{said}"
    );
    serde_json::from_slice(&checked.stdout).unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The `warmlane.toml` of the install's ConfigMap.
fn config_text(objects: &[Value]) -> String {
    let maps = of_kind(objects, "ConfigMap");
    assert_eq!(maps.len(), 1);
    maps[0]["data"]["warmlane.toml"]
        .as_str()
        .expect("the ConfigMap holds warmlane.toml")
        .to_string()
}

/// `warmlane config check`'s configuration in effect for `text`.
fn effective(text: &str) -> toml::Table {
    let dir = support::scratch("kubernetes-config");
    let file = dir.join("warmlane.toml");
    std::fs::write(&file, text).unwrap();
    let (code, stdout, stderr) = warmlane(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "the ConfigMap's warmlane.toml: {stderr}");
    toml::from_str(&stdout).unwrap()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The quantity `q` (`256Mi`, `1Gi`) in MiB.
fn mib(q: &Value) -> i64 {
    let q = q.as_str().unwrap();
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: i64 = n.parse().unwrap();
    match unit {
        "Mi" => n,
        "Gi" => n * 1024,
        _ => panic!("memory given as {q}: use Mi or Gi"),
    }
}

#[test]
fn every_install_renders_and_validates_offline() {
    for dir in INSTALLS {
        let objects = render(dir);
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        for kind in [
            "Namespace",
            "ConfigMap",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ] {
            assert!(kinds.contains(&kind), "{dir} has no {kind}: {kinds:?}");
        }
        for o in &objects {
            if o["kind"] != "Namespace" {
                assert_eq!(o["metadata"]["namespace"], "warmlane", "{dir}: {o}");
            }
        }
    }
}

#[test]
fn pods_are_locked_down_sized_and_given_time_to_drain() {
    for dir in INSTALLS {
        let objects = render(dir);
        let config = effective(&config_text(&objects));
        let grace = config["server"]["shutdown_grace_secs"]
            .as_integer()
            .unwrap();
        let cache = config["engine"]["compile_cache_dir"].as_str().unwrap();
        let workloads: Vec<&Value> = ["Deployment", "StatefulSet"]
            .iter()
            .flat_map(|k| of_kind(&objects, k))
            .collect();
        for w in workloads {
            let name = w["metadata"]["name"].as_str().unwrap();
            let pod = &w["spec"]["template"]["spec"];
            assert_eq!(pod["automountServiceAccountToken"], false, "{dir} {name}");
            let sc = &pod["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{dir} {name}");
            assert_eq!(
                sc["seccompProfile"]["type"], "RuntimeDefault",
                "{dir} {name}"
            );
            for c in pod["containers"].as_array().unwrap() {
                let csc = &c["securityContext"];
                assert_eq!(csc["readOnlyRootFilesystem"], true, "{dir} {name}");
                assert_eq!(csc["allowPrivilegeEscalation"], false, "{dir} {name}");
                assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                let r = &c["resources"];
                assert_eq!(
                    mib(&r["requests"]["memory"]),
                    mib(&r["limits"]["memory"]),
                    "{dir} {name}: memory request = limit"
                );
            }
            if w["kind"] == "StatefulSet" {
                continue;
            }
            // The warmlane pods: the image's user, a writable compile cache
            // where the configuration puts it, and time to drain.
            assert_eq!(int(&sc["runAsUser"]), 65532, "{dir} {name}");
            let c = &pod["containers"][0];
            let mount = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["mountPath"] == cache)
                .unwrap_or_else(|| panic!("{dir} {name}: nothing mounted at {cache}"));
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            assert!(volume["emptyDir"].is_object(), "{dir} {name}: {volume}");
            let pre_stop = int(&c["lifecycle"]["preStop"]["sleep"]["seconds"]);
            let termination = int(&pod["terminationGracePeriodSeconds"]);
            assert!(
                termination > pre_stop + 2 * grace,
                "{dir} {name}: {termination} s to stop, after a {pre_stop} s preStop and twice {grace} s of grace"
            );
            let readiness = &c["readinessProbe"];
            let liveness = &c["livenessProbe"];
            let patience = |p: &Value| int(&p["periodSeconds"]) * int(&p["failureThreshold"]);
            assert!(
                patience(liveness) > patience(readiness),
                "{dir} {name}: liveness must be slower than readiness"
            );
        }
    }
}

/// A Deployment's `warmlane serve` arguments, started as the real binary
/// with the install's configuration (Redis, plugin and cache paths made
/// local): its probes answered, and for a worker, its lanes' streams made.
#[test]
fn each_deployment_runs_as_rendered_and_answers_its_probes() {
    let redis = RedisServer::start();
    for dir in ["overlays/keda", "overlays/single"] {
        let objects = render(dir);
        let text = config_text(&objects);
        let config = effective(&text);
        let listen = config["server"]["listen"].as_str().unwrap();
        let port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
        let mut local: toml::Table = toml::from_str(&text).unwrap();
        if local.contains_key("redis") {
            local["redis"]["url"] = toml::Value::String(redis.url());
        }
        let scratch = support::scratch("kubernetes-run");
        let plugins = scratch.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        local["plugins"]["dir"] = toml::Value::String(plugins.display().to_string());
        local["engine"]["compile_cache_dir"] =
            toml::Value::String(scratch.join("cache").display().to_string());
        let local = toml::to_string(&local).unwrap();
        for d in of_kind(&objects, "Deployment") {
            let name = d["metadata"]["name"].as_str().unwrap();
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            let args: Vec<&str> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let server = Serve::start_with_args(&local, &args);
            server.wait_ready();
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let get = &c[probe]["httpGet"];
                let port_name = &get["port"];
                let container_port = c["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| &p["name"] == port_name || &p["containerPort"] == port_name)
                    .unwrap_or_else(|| {
                        panic!("{dir} {name}: {probe} names no port of the container")
                    });
                assert_eq!(int(&container_port["containerPort"]), port, "{dir} {name}");
                let path = get["path"].as_str().unwrap();
                let r = server.get(path);
                assert_eq!(r.status, 200, "{dir} {name}: {probe} {path}");
            }
            if args.contains(&"worker") {
                // The worker made its lanes' streams and group in Redis.
                let lane = args[args.iter().position(|a| *a == "--lanes").unwrap() + 1];
                let stream = format!("warmlane:{{{lane}}}:stream");
                let groups = format!("{:?}", redis.command(&["XINFO", "GROUPS", &stream]));
                assert!(groups.contains("workers"), "{stream}: {groups}");
            }
        }
    }
}

#[test]
fn autoscalers_watch_the_streams_the_host_uses() {
    let objects = render("overlays/keda");
    let config = effective(&config_text(&objects));
    let prefix = config["redis"]["key_prefix"].as_str().unwrap();
    let url = config["redis"]["url"].as_str().unwrap();
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    // The Redis the configuration names is the install's Service.
    let service = named(&objects, "Service", "warmlane-redis");
    let service_port = int(&service["spec"]["ports"][0]["port"]);
    assert_eq!(
        address,
        format!("warmlane-redis.warmlane.svc.cluster.local:{service_port}")
    );
    for (lane, min) in [("light", 1), ("heavy", 0)] {
        let deployment = format!("warmlane-{lane}-worker");
        let scaled = named(&objects, "ScaledObject", &deployment);
        assert_eq!(
            scaled["spec"]["scaleTargetRef"]["name"],
            deployment.as_str()
        );
        named(&objects, "Deployment", &deployment);
        assert_eq!(int(&scaled["spec"]["minReplicaCount"]), min, "{lane}");
        let triggers = scaled["spec"]["triggers"].as_array().unwrap();
        let mut lag = false;
        let mut pending = false;
        for t in triggers {
            assert_eq!(t["type"], "redis-streams");
            let m = &t["metadata"];
            assert_eq!(m["address"], address, "{lane}");
            // The host's names, as the host's own worker makes them (see
            // each_deployment_runs_as_rendered_and_answers_its_probes).
            assert_eq!(m["stream"], format!("{prefix}:{{{lane}}}:stream"));
            assert_eq!(m["consumerGroup"], "workers");
            lag |= m["lagCount"].is_string() && m["activationLagCount"].is_string();
            pending |= m["pendingEntriesCount"].is_string();
        }
        assert!(
            lag && pending,
            "{lane}: a lag and a pending-entries trigger"
        );
    }
    // KEDA's operator may reach Redis, and only Redis.
    let keda = named(&objects, "NetworkPolicy", "warmlane-redis-from-keda");
    assert_eq!(
        keda["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "redis"
    );
    let hpa = render("overlays/hpa");
    for lane in ["light", "heavy"] {
        let deployment = format!("warmlane-{lane}-worker");
        let a = named(&hpa, "HorizontalPodAutoscaler", &deployment);
        assert_eq!(a["spec"]["scaleTargetRef"]["name"], deployment.as_str());
        assert_eq!(a["spec"]["metrics"][0]["resource"]["name"], "cpu");
    }
}

#[test]
fn only_the_api_takes_traffic_and_workers_reach_only_redis() {
    let objects = render("base");
    let service = named(&objects, "Service", "warmlane");
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/component"],
        "api"
    );
    let deny = named(&objects, "NetworkPolicy", "default-deny");
    assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));
    assert!(deny["spec"]["ingress"].is_null() && deny["spec"]["egress"].is_null());
    let api = named(&objects, "NetworkPolicy", "warmlane-api");
    assert!(
        api["spec"]["ingress"][0]["from"].is_null(),
        "the API takes traffic from anywhere"
    );
    let workers = named(&objects, "NetworkPolicy", "warmlane-workers");
    for rule in workers["spec"]["ingress"].as_array().unwrap() {
        // Only a metrics scrape from the monitoring namespace.
        assert_eq!(
            rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "monitoring"
        );
    }
    let egress = workers["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 2);
    assert_eq!(
        egress[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "redis"
    );
    assert_eq!(egress[1]["ports"][0]["port"], 53);
    let redis = named(&objects, "NetworkPolicy", "warmlane-redis");
    assert!(redis["spec"]["egress"].is_null());
    assert_eq!(
        redis["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "warmlane"
    );
    // Every pod a policy lets reach Redis, or lets be reached, exists.
    for d in of_kind(&objects, "Deployment") {
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            "warmlane"
        );
    }
    // Redis keeps what it acknowledged.
    let set = named(&objects, "StatefulSet", "warmlane-redis");
    let args = set["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains(r#""--appendonly","yes""#) && args.contains(r#""--appendfsync","always""#),
        "{args}"
    );
    assert!(
        args.contains(r#""--maxmemory-policy","noeviction""#),
        "{args}"
    );
}
