//! The operations files are part of the product, so they are tested too:
//! systemd units (`systemd-analyze verify`), Prometheus rules (`promtool check
//! rules` + `promtool test rules`), the Grafana dashboard (valid JSON, every
//! query names a metric chanvault exports), the example config (loads, and
//! has exactly the README table's keys), and the Nix files (parse; the
//! module documents exactly the README table's keys; in `contrib_nix.rs`).
//!
//! The external tools are required: a missing one fails the test with the
//! Debian package to install (`.ci/run` installs them all).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chanvault::config::Config;
use chanvault::metrics::METRIC_NAMES;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `name` on PATH, or fail with how to get it.
pub(crate) fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: install it with `apt-get install --no-install-recommends {package}` (.ci/run does)"
            )
        })
}

pub(crate) fn ok(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------- systemd

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let analyze = tool("systemd-analyze", "systemd");
    // ExecStart= must name an executable that exists: verify a copy of the
    // units that points at the binary under test.
    let tmp = tempfile::tempdir().unwrap();
    let src = repo().join("contrib/systemd");
    let mut units = vec![];
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("/usr/bin/chanvault ") || name.ends_with(".timer"),
            "{name}: ExecStart= should run /usr/bin/chanvault"
        );
        let text = text.replace(
            "/usr/bin/chanvault ",
            &format!("{} ", env!("CARGO_BIN_EXE_chanvault")),
        );
        std::fs::write(tmp.path().join(&name), text).unwrap();
        units.push(name);
    }
    units.sort();
    assert_eq!(
        units,
        [
            "chanvault-backup.service",
            "chanvault-backup.timer",
            "chanvault-verify.service",
            "chanvault-verify.timer",
            "chanvault.service"
        ]
    );
    let out = Command::new(analyze)
        .arg("verify")
        .args(units.iter().map(|u| tmp.path().join(u)))
        // Not under systemd as PID 1 here: verify needs no manager.
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings (exit 0): fail on any output.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        out.status
    );
}

#[test]
fn systemd_units_keep_their_promises() {
    let main = read("contrib/systemd/chanvault.service");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "LoadCredential=chanvault.macaroon:",
        "ExecStart=/usr/bin/chanvault watch --config %d/chanvault.toml",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/chanvault",
        "StateDirectory=chanvault",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "UMask=0077",
    ] {
        assert!(main.contains(line), "chanvault.service lacks {line:?}");
    }
    // The allocator setting the memory bench measures is in both units.
    let tunables = format!(
        "{}={}",
        chanvault::malloc_env::VAR,
        chanvault::malloc_env::VALUE
    );
    assert!(main.contains(&format!("Environment={tunables}")));
    assert!(read("nix/module.nix").contains(&format!("Environment = \"{tunables}\"")));
    let backup = read("contrib/systemd/chanvault-backup.service");
    // Resource caps and a private IPC namespace in every service, and in the
    // module's shared hardening (issue 13 §2: a runaway cannot starve LND).
    let module = read("nix/module.nix");
    for (unit, nix) in RESOURCE_CAPS {
        for name in [
            "chanvault.service",
            "chanvault-backup.service",
            "chanvault-verify.service",
        ] {
            let text = read(&format!("contrib/systemd/{name}"));
            let set: Vec<&str> = text.lines().filter(|l| l.starts_with(unit)).collect();
            assert_eq!(set, [*unit], "{name} must set exactly {unit:?}");
        }
        assert!(module.contains(nix), "nix/module.nix lacks {nix:?}");
    }
    // 3 (unchanged) is success; 4 (suspect) and 5 (undelivered) must fail the unit.
    let success: Vec<&str> = backup
        .lines()
        .filter_map(|l| l.strip_prefix("SuccessExitStatus="))
        .collect();
    assert_eq!(success, ["3"], "chanvault-backup.service");
    assert_eq!(chanvault::cli::exit::UNCHANGED, 3);
    assert!(backup.contains("ExecStart=/usr/bin/chanvault backup --once"));
    let timer = read("contrib/systemd/chanvault-verify.timer");
    for line in [
        "OnCalendar=monthly",
        "Persistent=true",
        "RandomizedDelaySec=",
    ] {
        assert!(
            timer.contains(line),
            "chanvault-verify.timer lacks {line:?}"
        );
    }
}

/// (unit line, the module's line): the same values in both.
const RESOURCE_CAPS: &[(&str, &str)] = &[
    ("MemoryMax=512M", "MemoryMax = \"512M\";"),
    ("TasksMax=256", "TasksMax = 256;"),
    ("LimitNOFILE=1024", "LimitNOFILE = 1024;"),
    ("PrivateIPC=yes", "PrivateIPC = true;"),
];

/// `systemd-analyze security --offline=true` scores chanvault.service no
/// worse than SECURITY.md says.
#[test]
fn systemd_exposure_is_no_worse_than_security_md_says() {
    let analyze = tool("systemd-analyze", "systemd");
    let security = read("SECURITY.md");
    let claimed: f64 = security
        .split("exposure level of ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("SECURITY.md records `exposure level of N.N` for chanvault.service");
    let out = ok(
        "systemd-analyze security",
        Command::new(analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(repo().join("contrib/systemd/chanvault.service"))
            .env("SYSTEMD_LOG_LEVEL", "notice")
            .output()
            .unwrap(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for chanvault.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{stdout}"));
    assert!(
        score <= claimed,
        "chanvault.service scores {score}, SECURITY.md says {claimed}"
    );
}

// ---------------------------------------------------------------- Prometheus

#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let promtool = tool("promtool", "prometheus");
    let dir = repo().join("contrib/prometheus");
    ok(
        "promtool check rules",
        Command::new(&promtool)
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&dir)
            .output()
            .unwrap(),
    );
    ok(
        "promtool test rules",
        Command::new(&promtool)
            .args(["test", "rules", "alerts.test.yml", "alerts-verify.test.yml"])
            .current_dir(&dir)
            .output()
            .unwrap(),
    );
}

/// Metrics that contrib/ may use although `watch` does not export them.
const FOREIGN_METRICS: &[(&str, &str)] = &[
    ("up", "Prometheus itself"),
    (
        "chanvault_verify_success",
        "`chanvault verify --textfile` via node_exporter's textfile collector",
    ),
    (
        "chanvault_verify_last_run_timestamp_seconds",
        "`chanvault verify --textfile` via node_exporter's textfile collector",
    ),
    ("lnd_channels_active_total", "lndmon"),
    ("lnd_channels_inactive_total", "lndmon"),
];

const PROMQL_WORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "inf",
    "nan",
    // Aggregations may be followed by `by (…)` rather than `(`.
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// Keywords followed by a label list, not an expression.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside
/// strings, label matchers `{…}`, ranges `[…]` and grouping lists, that are
/// not functions, keywords or numbers.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut prev_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                if chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let is_call = chars.get(j) == Some(&'(');
            let grouping = GROUPING.contains(&prev_word.as_str());
            if is_call && GROUPING.contains(&word.as_str()) {
                // by (…), on(…), group_left(…): skip the label list.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            } else if !is_call
                && !grouping
                && !PROMQL_WORDS.contains(&word.to_ascii_lowercase().as_str())
            {
                out.insert(word.clone());
            }
            prev_word = word;
            continue;
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers, including durations and exponents (1e3, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        } else {
            i += 1;
        }
        if !c.is_whitespace() {
            prev_word.clear();
        }
    }
    out
}

/// What the exposition appends to a family's name (counters, histograms).
const SUFFIXES: &[&str] = &["_total", "_bucket", "_sum", "_count"];

fn exported(name: &str) -> bool {
    METRIC_NAMES
        .iter()
        .any(|n| name == *n || name.strip_prefix(n).is_some_and(|s| SUFFIXES.contains(&s)))
}

fn check_names(source: &str, exprs: &[String]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for e in exprs {
        let names = promql_metrics(e);
        assert!(!names.is_empty(), "{source}: no metric found in {e:?}");
        for n in names {
            assert!(
                exported(&n) || FOREIGN_METRICS.iter().any(|(f, _)| *f == n),
                "{source}: {n} (in {e:?}) is not in chanvault::metrics::METRIC_NAMES nor a known foreign metric"
            );
            used.insert(n);
        }
    }
    used
}

#[test]
fn promql_metric_extraction() {
    let got = promql_metrics(
        r#"sum by (target, reason) (increase(chanvault_target_delivery_failures_total{instance=~"$instance"}[$__rate_interval])) or on(job) up{job="x"} > 2 * 3600"#,
    );
    let want: BTreeSet<String> = ["chanvault_target_delivery_failures_total", "up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// The `expr:` values of alerts.yml (one line, or a `|` block).
fn alert_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

#[test]
fn alert_rules_name_only_exported_metrics() {
    let exprs = alert_exprs(&read("contrib/prometheus/alerts.yml"));
    assert!(exprs.len() >= 8, "{exprs:?}");
    let used = check_names("alerts.yml", &exprs);
    for must in [
        "chanvault_lnd_connected",
        "chanvault_target_up_to_date",
        "chanvault_backup_newest_suspect",
        "chanvault_backup_last_good_channels",
        "chanvault_verify_success",
        "chanvault_verify_last_run_timestamp_seconds",
        "chanvault_build_info",
        "up",
    ] {
        assert!(used.contains(must), "alerts.yml never uses {must}");
    }
}

// ---------------------------------------------------------------- Grafana

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_is_valid_and_has_a_panel_per_metric() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("contrib/grafana/dashboard.json")).expect("valid JSON");
    assert_eq!(dash["uid"], "chanvault");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let mut exprs = vec![];
    collect_exprs(&dash["panels"], &mut exprs);
    let used = check_names("dashboard.json", &exprs);
    // One dashboard for every node (docs/many-nodes.md): a `node` variable
    // from the scrape jobs' node label, and every selector of every panel
    // filters on it (All is `.*`, which also matches a single node's series
    // without the label).
    let vars = dash["templating"]["list"].as_array().expect("variables");
    let node = vars
        .iter()
        .find(|v| v["name"] == "node")
        .expect("a `node` dashboard variable");
    assert_eq!(
        node["definition"],
        "label_values(chanvault_build_info, node)"
    );
    assert_eq!(node["query"]["query"], node["definition"]);
    assert_eq!(node["includeAll"], true);
    assert_eq!(node["multi"], true);
    assert_eq!(node["allValue"], ".*");
    for e in &exprs {
        let unfiltered = selectors_without(e, NODE_FILTER);
        assert!(
            unfiltered.is_empty(),
            "dashboard.json: {unfiltered:?} in {e:?} lack {NODE_FILTER}"
        );
    }
    // Every family watch exports has a panel.
    for name in METRIC_NAMES {
        assert!(
            used.iter()
                .any(|u| u == name || u.strip_prefix(name).is_some_and(|s| SUFFIXES.contains(&s))),
            "dashboard.json has no panel for {name}"
        );
    }
}

/// The label matcher every dashboard selector carries.
const NODE_FILTER: &str = r#"node=~"$node""#;

/// The metric selectors of `expr` whose label matchers lack `matcher`
/// (a bare name, or `{…}` without it).
fn selectors_without(expr: &str, matcher: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = vec![];
    for name in promql_metrics(expr) {
        let mut from = 0;
        while let Some(at) = expr[from..].find(&name) {
            let start = from + at;
            let end = start + name.len();
            from = end;
            let bounded = !expr[..start].ends_with(ident) && !expr[end..].starts_with(ident);
            if !bounded {
                continue;
            }
            let filtered = expr[end..]
                .strip_prefix('{')
                .and_then(|rest| rest.split_once('}'))
                .is_some_and(|(labels, _)| labels.contains(matcher));
            if !filtered {
                out.push(name.clone());
            }
        }
    }
    out
}

#[test]
fn selectors_without_a_matcher_are_found() {
    let e = r#"sum(up{job="x"}) + foo_total{node=~"$node"} + foo + bar{job="a", node=~"$node"}"#;
    assert_eq!(selectors_without(e, NODE_FILTER), ["foo", "up"]);
}

// ---------------------------------------------------------------- config keys

/// Keys of the README's configuration table (first column), as dotted names
/// (`[[target]] name` -> `target.name`).
pub(crate) fn readme_config_keys() -> BTreeSet<String> {
    let readme = read("README.md");
    let start = readme
        .find("| key | default | meaning |")
        .expect("README has the config table");
    let mut keys = BTreeSet::new();
    for line in readme[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        let prefix = if first.contains("[[target]]") {
            "target."
        } else {
            ""
        };
        for (n, part) in first.split('`').enumerate() {
            if n % 2 == 1 && part != "[[target]]" {
                let part = part.trim_start_matches("[[target]] ").trim();
                keys.insert(format!("{prefix}{part}"));
            }
        }
    }
    assert!(keys.len() > 20, "{keys:?}");
    keys
}

/// Keys of the example config: set (`key = v`) and commented (`# key = v`),
/// with their section as prefix (`[[target]]` -> `target.`).
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
            section = format!("{s}.");
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = format!("{s}.");
            continue;
        }
        let l = l.strip_prefix("# ").unwrap_or(l);
        if let Some((k, _)) = l.split_once(" = ")
            && !k.is_empty()
            && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.insert(format!("{section}{k}"));
        }
    }
    keys
}

fn toml_keys(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(sub) => toml_keys(&format!("{key}."), sub, out),
            toml::Value::Array(a) if a.iter().all(|v| v.is_table()) && !a.is_empty() => {
                for v in a {
                    if let toml::Value::Table(sub) = v {
                        toml_keys(&format!("{key}."), sub, out);
                    }
                }
            }
            _ => {
                out.insert(key);
            }
        }
    }
}

#[test]
fn example_config_loads() {
    let text = read("contrib/chanvault.example.toml");
    // Where the units put it: relative secret paths resolve next to it.
    let cfg = Config::parse(
        &text,
        Path::new("/run/credentials/chanvault.service/chanvault.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.lnd.macaroon,
        Path::new("/run/credentials/chanvault.service/chanvault.macaroon")
    );
    assert_eq!(cfg.state_dir, Path::new("/var/lib/chanvault"));
    assert!(cfg.escrow.is_some());
    assert_eq!(cfg.targets.len(), 2);
    // The recipients are real keys.
    chanvault::seal::Recipients::from_config(&cfg.seal.recipients, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    // Uncommenting every optional key still loads (except the login method
    // that excludes the configured one, and the rclone keys, which need an
    // rclone: repository instead of the example's rest: one).
    let all: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.contains(" = ")
                    && !rest.starts_with("token_file")
                    && !rest.starts_with("rclone_")
                    && rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Config::parse(&all, Path::new("/etc/chanvault/chanvault.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn example_config_has_exactly_the_readme_tables_keys() {
    let example = example_keys(&read("contrib/chanvault.example.toml"));
    let readme = readme_config_keys();
    let only_example: Vec<_> = example.difference(&readme).collect();
    let only_readme: Vec<_> = readme.difference(&example).collect();
    assert!(
        only_example.is_empty() && only_readme.is_empty(),
        "keys in contrib/chanvault.example.toml but not in the README's config table: {only_example:?}; \
         in the README table but not in the example: {only_readme:?}"
    );
}

#[test]
fn example_config_covers_every_key_of_the_config_type() {
    // Every key the config type writes back (all non-optional ones, and the
    // optional ones the example sets) is in the example.
    let text = read("contrib/chanvault.example.toml");
    let cfg = Config::parse(&text, Path::new("/etc/chanvault/chanvault.toml")).unwrap();
    let rendered: toml::Table = toml::from_str(&cfg.to_toml()).unwrap();
    let mut keys = BTreeSet::new();
    toml_keys("", &rendered, &mut keys);
    let example = example_keys(&text);
    let missing: Vec<_> = keys.difference(&example).collect();
    assert!(missing.is_empty(), "the example config lacks {missing:?}");
}
