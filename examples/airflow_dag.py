"""Two Airflow DAGs: the nightly job for the DAG run's date ({{ ds }}), and the same
kind of job split over shards with dynamic task mapping.

batchinfer's exit code fails the task (4: too many bad rows, 5: the previous run
still holds the output); the summary JSON is the artefact a downstream task reads.
"""
import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="batchinfer_nightly",
    schedule="15 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    score = BashOperator(
        task_id="score",
        # BEGIN batchinfer command (tests/cli/jobfile.rs runs it with --check)
        bash_command="batchinfer run examples/nightly.toml --date {{ ds }} --summary-json summary-{{ ds }}.json --quiet",
        # END batchinfer command
        cwd="/srv/batchinfer",
        env={"BATCHINFER_THREADS": "2", "BATCHINFER_PRICE_PER_HOUR": "0.10"},
        append_env=True,
    )

SHARDS = 4

with DAG(
    dag_id="batchinfer_sharded",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as sharded:
    # One mapped task per shard; a retried task resumes its shard (resume = true).
    shards = BashOperator.partial(
        task_id="score_shard",
        cwd="/srv/batchinfer",
        retries=2,
        append_env=True,
    ).expand(
        bash_command=[
            # BEGIN sharded command (tests/cli/jobfile.rs runs every shard)
            f"batchinfer run examples/sharded.toml --date {{{{ ds }}}} --shard {i}/{SHARDS} --log-format json"
            # END sharded command
            for i in range(SHARDS)
        ],
    )
    # Exit 0 only when every shard wrote its _SUCCESS marker.
    all_done = BashOperator(
        task_id="all_shards_done",
        bash_command="batchinfer status examples/scores-{{ ds }}/",
        cwd="/srv/batchinfer",
    )
    shards >> all_done

with DAG(
    dag_id="batchinfer_nightly_s3",
    schedule="45 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as nightly_s3:
    # Inputs, model, output and summary in S3 (examples/nightly_s3.toml); the
    # worker's role or the connection's variables give the credentials.
    score_s3 = BashOperator(
        task_id="score",
        bash_command="batchinfer run examples/nightly_s3.toml --date {{ ds }} --quiet",
        cwd="/srv/batchinfer",
        env={"AWS_REGION": "eu-west-1", "BATCHINFER_PRICE_PER_HOUR": "0.10"},
        append_env=True,
    )
