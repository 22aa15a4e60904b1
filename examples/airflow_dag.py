"""An Airflow DAG running the nightly job for the DAG run's date ({{ ds }}).

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
