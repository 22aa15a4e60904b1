//! `batchinfer run JOB.toml`: flags beat environment variables, which beat the job
//! file; unknown keys are errors; paths take the run date; the examples validate.

use super::harness::{read_json, read_parquet, testdata, Env};

const FEATURES: &str = r#"["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"]"#;

fn job(env: &Env, name: &str, body: &str) -> String {
    std::fs::write(env.path(name), body).unwrap();
    name.to_string()
}

fn base_job() -> String {
    let td = testdata();
    format!(
        "model = \"{}\"\ninput = [\"{}\"]\nfeatures = {FEATURES}\nkeep = [\"id\"]\n",
        td.join("models/rf_binary.onnx").display(),
        td.join("data/numeric.parquet").display()
    )
}

fn summary(env: &Env, file: &str) -> serde_json::Value {
    read_json(&env.path(file))
}

#[test]
fn flag_beats_environment_beats_job_file() {
    let env = Env::new();
    let file = job(&env, "job.toml", &format!("{}output = \"out.parquet\"\nthreads = 1\nbatch_size = 100\nprice_per_hour = 1.0\nsummary_json = \"s.json\"\nquiet = true\n", base_job()));
    env.run_with(
        &["run", &file, "--threads", "2"],
        None,
        &[("BATCHINFER_BATCH_SIZE", "50"), ("BATCHINFER_THREADS", "3")],
    )
    .expect_code(0);
    let s = summary(&env, "s.json");
    assert_eq!(
        s["threads"], 2,
        "the flag wins over the environment and the file"
    );
    assert_eq!(s["batch_size"], 50, "the environment wins over the file");
    assert_eq!(
        s["cost"]["price_per_hour_usd"], 1.0,
        "the file applies where nothing else is set"
    );
    assert_eq!(read_parquet(&env.path("out.parquet")).num_rows(), 1500);
}

#[test]
fn environment_variables_apply_to_score_too() {
    let env = Env::new();
    env.run_with(
        &[
            "score",
            "-m",
            "TD/models/rf_binary.onnx",
            "-i",
            "TD/data/numeric.parquet",
            "-o",
            "out.parquet",
            "--keep",
            "id",
            "--features",
            "f0,f1,f2,f3,f4,f5,f6,f7",
            "--summary-json",
            "s.json",
            "-q",
        ],
        None,
        &[
            ("BATCHINFER_BATCH_SIZE", "64"),
            ("BATCHINFER_OVERWRITE", "true"),
        ],
    )
    .expect_code(0);
    assert_eq!(summary(&env, "s.json")["batch_size"], 64);
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let env = Env::new();
    let file = job(
        &env,
        "job.toml",
        &format!("{}output = \"out.parquet\"\nthreds = 2\n", base_job()),
    );
    env.run(&["run", &file])
        .expect_code(2)
        .expect_stderr("unknown key `threds`");
    let file = job(
        &env,
        "job2.toml",
        &format!(
            "{}output = \"out.parquet\"\noverwrite = \"yes\"\n",
            base_job()
        ),
    );
    env.run(&["run", &file])
        .expect_code(2)
        .expect_stderr("key `overwrite` is a switch");
    let file = job(&env, "job3.toml", "model = [1, \n");
    env.run(&["run", &file])
        .expect_code(2)
        .expect_stderr("is not valid TOML");
    env.run(&["run", "missing.toml"])
        .expect_code(2)
        .expect_stderr("cannot read job file missing.toml");
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn paths_take_the_run_date_and_are_relative_to_the_job_file() {
    let env = Env::new();
    std::fs::create_dir(env.path("jobs")).unwrap();
    std::fs::create_dir(env.path("jobs/out")).unwrap();
    job(&env, "jobs/nightly.toml", &format!("{}output = \"out/scores-{{date}}.parquet\"\nsummary_json = \"out/{{yyyy}}/{{mm}}/{{dd}}.json\"\nquiet = true\n", base_job()));
    std::fs::create_dir_all(env.path("jobs/out/2024/03")).unwrap();
    env.run(&["run", "jobs/nightly.toml", "--date", "2024-03-05"])
        .expect_code(0);
    assert!(env.path("jobs/out/scores-2024-03-05.parquet").exists());
    assert!(env.path("jobs/out/2024/03/05.json").exists());
    env.run(&["run", "jobs/nightly.toml", "--date", "2024-02-30"])
        .expect_code(2)
        .expect_stderr("expected YYYY-MM-DD");
}

#[test]
fn check_validates_and_writes_nothing() {
    let env = Env::new();
    let file = job(
        &env,
        "job.toml",
        &format!("{}output = \"out.parquet\"\n", base_job()),
    );
    let run = env.run(&["run", &file, "--check"]);
    run.expect_code(0);
    assert!(run.stdout().contains("check passed"), "{}", run.context());
    assert_eq!(env.files(), vec!["job.toml"]);
    // A broken mapping fails the check the way it would fail the run.
    env.run(&["run", &file, "--check", "--features", "f0,nope"])
        .expect_code(3)
        .expect_stderr("takes 8 columns (shape [?, 8]), but 2 were mapped to it: f0, nope");
}

#[test]
fn the_examples_validate() {
    let env = Env::new();
    let examples = testdata().parent().unwrap().join("examples");
    let nightly = examples.join("nightly.toml");
    env.run(&[
        "run",
        nightly.to_str().unwrap(),
        "--check",
        "--date",
        "2024-01-02",
    ])
    .expect_code(0);
    // Two models in one pass, each with its own mapping.
    let two = examples.join("champion_challenger.toml");
    env.run(&["run", two.to_str().unwrap(), "--check"])
        .expect_code(0)
        .expect_stdout("model champion (")
        .expect_stdout("model challenger (");
    // The Airflow task's command line, as the DAG writes it, with a date for {{ ds }}.
    let dag = std::fs::read_to_string(examples.join("airflow_dag.py")).unwrap();
    let start = dag.find("bash_command=\"").unwrap() + "bash_command=\"".len();
    let command = &dag[start..start + dag[start..].find('"').unwrap()];
    let command = command
        .replace("{{ ds }}", "2024-01-02")
        .replace("examples/nightly.toml", nightly.to_str().unwrap());
    let args: Vec<&str> = command
        .split_whitespace()
        .skip(1)
        .chain(["--check"])
        .collect();
    env.run(&args).expect_code(0);
    // The crontab entry runs the same job file.
    let crontab = std::fs::read_to_string(examples.join("crontab")).unwrap();
    assert!(crontab
        .lines()
        .any(|l| !l.starts_with('#') && l.contains("batchinfer run examples/nightly.toml")));
}

/// The text between `# BEGIN {what}` and `# END {what}` in an example.
fn marked<'a>(text: &'a str, what: &str) -> &'a str {
    let begin = format!("# BEGIN {what}");
    let start = text.find(&begin).unwrap_or_else(|| panic!("no {begin}"));
    let start = start + text[start..].find('\n').unwrap() + 1;
    let end = start + text[start..].find(&format!("# END {what}")).unwrap();
    text[start..end].trim()
}

#[test]
fn the_sharded_examples_score_every_row_once() {
    let env = Env::new();
    let examples = testdata().parent().unwrap().join("examples");
    let job = examples.join("sharded.toml");
    let job = job.to_str().unwrap();
    // The reference: the same job unsharded.
    env.run(&["run", job, "-o", "whole/", "--date", "2024-01-02", "-q"])
        .expect_code(0);
    let whole = super::directory::read_parts(&env.path("whole"));
    assert_eq!(whole.num_rows(), 3000);

    // Airflow: one mapped task per shard.
    let dag = std::fs::read_to_string(examples.join("airflow_dag.py")).unwrap();
    let template = marked(&dag, "sharded command");
    let template = template
        .strip_prefix("f\"")
        .and_then(|t| t.strip_suffix('"'))
        .expect("an f-string");
    let shards: u32 = dag
        .lines()
        .find_map(|l| l.strip_prefix("SHARDS = "))
        .unwrap()
        .parse()
        .unwrap();
    for i in 0..shards {
        let command = template
            .replace("{{{{ ds }}}}", "2024-01-02")
            .replace("{i}", &i.to_string())
            .replace("{SHARDS}", &shards.to_string())
            .replace("examples/sharded.toml", job);
        let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
        args.extend(["-o", "airflow/"]);
        env.run(&args).expect_code(0);
    }
    env.run(&["status", "airflow/"]).expect_code(0);
    assert_eq!(super::directory::read_parts(&env.path("airflow")), whole);

    // Kubernetes: an Indexed Job's pods, told their index by JOB_COMPLETION_INDEX.
    let manifest = std::fs::read_to_string(examples.join("k8s_indexed_job.yaml")).unwrap();
    let line = marked(&manifest, "batchinfer command");
    let args: Vec<String> =
        serde_json::from_str(line.strip_prefix("args:").unwrap().trim()).unwrap();
    let completions: u32 = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap()
        .parse()
        .unwrap();
    for i in 0..completions {
        let mut a: Vec<String> = args
            .iter()
            .map(|x| x.replace("/etc/batchinfer/sharded.toml", job))
            .collect();
        a.extend(["-o".into(), "k8s/".into()]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run_with(&a, None, &[("JOB_COMPLETION_INDEX", &i.to_string())])
            .expect_code(0);
    }
    env.run(&["status", "k8s/"])
        .expect_code(0)
        .expect_stdout(&format!("{completions} of {completions} shard(s) complete"));
    assert_eq!(super::directory::read_parts(&env.path("k8s")), whole);

    // cron: the shard's line runs the same job file.
    let crontab = std::fs::read_to_string(examples.join("crontab")).unwrap();
    assert!(
        crontab
            .lines()
            .any(|l| !l.starts_with('#')
                && l.contains("batchinfer run examples/sharded.toml --shard"))
    );
}
