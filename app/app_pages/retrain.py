"""Retrain: choose the data and the parameters, start a run in the background, follow it, publish it."""
from pathlib import Path

import streamlit as st

from app import context, data, retrain
from app.runs import held_reasons, publish_anyway
from pipeline.config import ENGINES, EXCLUDE_RULES, RunParams
from pipeline.demo import DEMO_ROWS, DEMO_SEED
from pipeline.strategies import STRATEGIES
from reports import figures
from reports.words import DESCRIPTIONS

SOURCES = ["Demo generator", "Upload a file", "Path on the server"]
EXCLUDE_HELP = {"all": "anyone who touched it", "purchased": "its buyers", "none": "nobody"}


def choose_source(db: str) -> retrain.Source | str | None:
    """The chosen data, or a message saying what is wrong with it (None: nothing chosen yet)."""
    kind = st.radio("Data", SOURCES, horizontal=True, key="rt_source")
    if kind == "Demo generator":
        left, right = st.columns(2)
        rows = left.number_input("Rows", min_value=1000, max_value=5_000_000, value=DEMO_ROWS, step=10_000,
                                 key="rt_rows")
        seed = right.number_input("Seed", min_value=0, value=DEMO_SEED, step=1, key="rt_seed")
        return retrain.Source("demo", rows=int(rows), seed=int(seed))
    if kind == "Upload a file":
        limit = st.get_option("server.maxUploadSize")  # MB, from .streamlit/config.toml
        events = saved_upload(st.file_uploader(
            f"Events: CSV (or .csv.gz) or Parquet, at most {limit} MB", type=retrain.UPLOAD_TYPES,
            max_upload_size=limit, key="rt_upload",
            help="Columns customer_id, product_id, event, event_date; kept under data/uploads/"), db)
        catalogue = saved_upload(st.file_uploader(
            "Product catalogue (optional): CSV with product_id, category", type=retrain.UPLOAD_TYPES,
            max_upload_size=limit, key="rt_upload_products"), db)
    else:
        typed = st.text_input("Events file on the server (CSV or Parquet)", key="rt_path",
                              placeholder="data/demo/interactions.csv").strip()
        events = Path(typed) if typed else None
        typed = st.text_input("Product catalogue on the server (optional)", key="rt_products",
                              placeholder="data/demo/products.csv").strip()
        catalogue = Path(typed) if typed else None
    if events is None:
        return None
    problem = retrain.check_input(events, "events")
    if not problem and catalogue is not None:
        problem = retrain.check_input(catalogue, "catalogue")
    return problem or retrain.Source("file", path=str(events), products_path=str(catalogue or ""))


def saved_upload(upload, db: str) -> Path | None:
    """Keep an uploaded file on disk once (reruns see the same upload again) and return its path."""
    if upload is None:
        return None
    saved = st.session_state.get(f"rt_saved_{upload.file_id}")
    if saved is None:
        saved = retrain.save_upload(upload.name, upload.getvalue(), Path(db).resolve().parent / "uploads")
        st.session_state[f"rt_saved_{upload.file_id}"] = saved
    return saved


def choose_params() -> tuple[dict, bool]:
    defaults = RunParams()
    st.markdown("**Event weights**")
    events = {name: col.number_input(name, min_value=0.0, value=float(w), step=0.5, key=f"rt_ev_{name}")
              for col, (name, w) in zip(st.columns(5), defaults.event_weights.items())}
    st.markdown("**Component weights** of the engagement score")
    components = {name: col.number_input(name, min_value=0.0, max_value=1.0, value=float(w), step=0.05,
                                         key=f"rt_cw_{name}")
                  for col, (name, w) in zip(st.columns(5), defaults.component_weights.items())}
    st.caption(f"Component weights sum to {sum(components.values()):.2f}.")
    a, b, c = st.columns(3)
    depth = a.number_input("Depth (audience size)", 1, 1000, defaults.depth, key="rt_depth")
    decay = b.number_input("Recency decay (days)", 1.0, 3650.0, float(defaults.decay_days), key="rt_decay")
    bot = c.number_input("Bot limit (interactions a day)", 1, 1_000_000, defaults.bot_daily_limit, key="rt_bot")
    a, b, c = st.columns(3)
    exclude = a.selectbox("Leave out of a product's audience", EXCLUDE_RULES, key="rt_exclude",
                          format_func=lambda r: f"{r}: {EXCLUDE_HELP.get(r, r)}",
                          help="Users who already interacted with the product (all), only its buyers, or nobody")
    holdout = b.slider("Holdout share (late events)", 0.0, 0.5, float(defaults.holdout), 0.05, key="rt_holdout")
    strategy = c.selectbox("Strategy", [retrain.PIPELINE_DEFAULT, *STRATEGIES], key="rt_strategy",
                           help="Leave it to the pipeline (it evaluates every strategy on the holdout and, when it "
                                "can, publishes the best), or force one.")
    if strategy in DESCRIPTIONS:
        st.caption(DESCRIPTIONS[strategy])
    a, b = st.columns([1, 2])
    engine = a.selectbox("Engine", ENGINES, key="rt_engine",
                         help="inprocess: this machine's memory; spark: a Spark cluster for data larger than that "
                              "(the audiences are ranked on its driver while the events fit there, else by "
                              "engagement as Spark jobs; the run's strategy note says which)")
    master = b.text_input("Spark master URL", key="rt_spark_master", placeholder="spark://host:7077 (empty: local[*])",
                          disabled=engine != "spark").strip()
    publish = st.checkbox("Publish when it succeeds and passes the publish gates", value=True, key="rt_publish",
                          help="The run compares itself with the run being served (rows, users, products, dropped "
                               "rows, recall); a run that fails a gate is held, with its reasons, for you to decide.")
    params = dict(depth=int(depth), decay_days=float(decay), bot_daily_limit=int(bot), exclude=exclude,
                  holdout=float(holdout), strategy=strategy, event_weights=events, component_weights=components,
                  engine=engine, spark_master=master if engine == "spark" else "")
    return params, publish


def start(ctx: context.Context, source: retrain.Source | str | None, params: dict, publish: bool) -> None:
    job = st.session_state.get("rt_job")
    busy = retrain.active_run(data.runs(ctx.db) if not ctx.problem else [])
    if (job and job.running()) or busy:
        which = f"run {busy['run_id']} ({busy['stage']})" if busy else "the run started from this page"
        st.error(f"A run is already in progress: {which}. Wait for it to finish, then retrain again.",
                 icon=":material/block:")
        return
    if source is None:
        st.error("Choose the data first: upload a file or type a path on the server.")
        return
    if isinstance(source, str):
        return  # already shown under the data choice
    cmd = retrain.command(ctx.db, source, params, publish)
    st.session_state["rt_job"] = retrain.start(cmd, Path(ctx.db).resolve().parent / "logs")


def follow(db: str, job: retrain.Job | None, other: dict | None) -> None:
    """Progress of the running pipeline; a full rerun when it ends so every page sees the new run."""
    runs = data.runs(db) if Path(db).exists() else []
    row = retrain.job_run(runs, job) if job else next((r for r in runs if r["run_id"] == other["run_id"]), None)
    if (job and not job.running()) or (not job and (row is None or row["status"] != "running")):
        st.rerun()
    who = f"Run {row['run_id']}" if row else "The pipeline"
    # A demo job generates its data before the run (and its row) begins.
    preparing = "generating the demo data" if job and "demo" in job.command else "starting"
    stage, progress = (row["stage"], float(row["progress"] or 0)) if row else (preparing, 0.0)
    st.progress(min(max(progress, 0.0), 1.0), text=f"{who}: {stage} — {100 * progress:.0f}%")
    if not job:
        st.caption("Started elsewhere (another session or the command line).")


def show_result(ctx: context.Context, job: retrain.Job) -> None:
    runs = data.runs(ctx.db) if Path(ctx.db).exists() else []
    row = retrain.job_run(runs, job)
    if row is None or row["status"] != "succeeded":
        if row is None:  # refused before it began: bad parameters, or another run holds the lock
            st.error(f"The pipeline did not start a run: {retrain.error_line(job.log)}", icon=":material/block:")
        else:
            st.error(f"Run {row['run_id']} failed: {row['error'] or retrain.error_line(job.log)}",
                     icon=":material/error:")
        current = data.current_run_id(ctx.db) if runs else None
        st.caption(f"The published run is unchanged (run {current})." if current else "Nothing was published.")
        return
    summary = row["summary"]
    published = row["published_at"] is not None
    held = held_reasons(row)
    if held and not published:
        st.warning(f"Run {row['run_id']} succeeded but is **held**: it failed the publish gates — "
                   + "; ".join(held) + ". The published run is unchanged.", icon=":material/pan_tool:")
    else:
        st.success(f"Run {row['run_id']} succeeded" + (" and is published." if published else " (not published)."),
                   icon=":material/check_circle:")
    cards = [("Rows read", summary.get("rows_read", 0)), ("Rows clean", summary.get("rows_clean", 0)),
             ("Users", summary.get("users", 0)), ("Products", summary.get("products", 0))]
    for column, (label, value) in zip(st.columns(len(cards)), cards):
        column.metric(label, f"{value:,}", border=True)
    left, right = st.columns(2)
    with left:
        st.dataframe(data.data_quality(data.ref(ctx.db, row)), hide_index=True, width="stretch",
                     column_config={"check": "rule", "rows": st.column_config.NumberColumn("rows", format="localized")})
    with right:
        st.plotly_chart(figures.stage_seconds(summary.get("seconds", {})), config=figures.PLOT_CONFIG)
    if "runs_message" in st.session_state:  # the answer of "Publish anyway" below, after its rerun
        ok, message = st.session_state.pop("runs_message")
        (st.success if ok else st.error)(message)
    if not published and held:
        publish_anyway(ctx.db, row, key="rt_publish_anyway")
    elif not published and st.button(f"Publish run {row['run_id']}", type="primary", key="rt_publish_now"):
        ok, message = retrain.publish(ctx.db, row["run_id"])
        (st.success if ok else st.error)(message)
        if ok:
            st.rerun()


ctx = context.get()
st.title("Retrain")
st.caption("Runs the pipeline's own command line in the background (`python -m pipeline run|demo …`). "
           "One run at a time; the published run changes only when a run succeeds and is published.")
source = choose_source(ctx.db)
if isinstance(source, str):
    st.error(source, icon=":material/error:")
with st.expander("Parameters", expanded=True):
    params, publish = choose_params()
if st.button("Retrain", type="primary", icon=":material/play_arrow:"):
    start(ctx, source, params, publish)

job = st.session_state.get("rt_job")
elsewhere = None if (job and job.running()) or ctx.problem else retrain.active_run(ctx.runs)
if (job and job.running()) or elsewhere:
    st.fragment(run_every=1.0)(follow)(ctx.db, job if job and job.running() else None, elsewhere)
elif job:
    with st.container(border=True):
        st.markdown("**Last run from this page**")
        show_result(ctx, job)
        with st.expander("Command line and log"):
            st.code(" ".join(job.command[2:]), language="bash", wrap_lines=True)
            st.caption(f"Log: `{job.log}`")
