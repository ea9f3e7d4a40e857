import shlex

from deploybench.measure.run import FILE_BACKENDS


def cell_inputs(w):
    inputs = model_inputs(w)
    artifact = plan(w).artifact(w.model, w.shape, w.backend, w.device, w.precision)
    if artifact:
        inputs["artifact"] = artifact
    return inputs


def measure_inputs(w):
    """A model file's repeats after the first are timed on the export's saved input."""
    inputs = cell_inputs(w)
    if w.backend in FILE_BACKENDS:
        inputs["saved_input"] = plan(w).saved_input(w.model, w.shape)
    return inputs


def artifact_arg(_, input):
    args = (
        f"--artifact {shlex.quote(input.artifact)}"
        if "artifact" in input.keys()
        else ""
    )
    if "saved_input" in input.keys():
        args += f" --saved-input {shlex.quote(input.saved_input)}"
    return args


RUNNABLE = ("available", IN_JOB)


def cell_machine(w):
    return machine_state(w.backend, w.device, w.precision)


def timing_args(w):
    m = config["measure"]
    # The stage breakdown is timed in the first repeat only; the repeats are for the latency.
    stages = m["stage_images"] if w.repeat == "1" else 0
    return (
        f"--warmup-iters {m['warmup_iters']} --warmup-seconds {m['warmup_seconds']}"
        f" --min-iters {m['min_iters']} --min-seconds {m['min_seconds']}"
        f" --max-seconds {m['max_seconds']} --threads {m['threads']}"
        f" --stage-images {stages}"
    )


def measure_threads(w):
    # Timing owns the machine: no other job may run beside a measurement (a cell this machine
    # cannot run only writes why, on one core). On a cluster the job has its node to itself
    # (--exclusive) and asks for the cores the profile's `set-threads` gives.
    if cell_machine(w) not in RUNNABLE:
        return 1
    return max(1, config["measure"]["threads"]) if ON_CLUSTER else workflow.cores


rule measure:
    input:
        unpack(measure_inputs),
    output:
        f"{PLAN.results_dir()}/measure/{{model}}/{{shape}}/{{device}}/{{backend}}-{{precision}}-b{{batch}}-r{{repeat}}.json",
    log:
        "logs/{profile}/measure/{model}/{shape}/{device}/{backend}-{precision}-b{batch}-r{repeat}.log",
    wildcard_constraints:
        shape=SHAPE,
        device="cpu|cuda",
        backend="[a-z_]+",
        precision="fp32|fp16|int8",
        batch="[0-9]+",
        repeat="[0-9]+",
    # Repeats are interleaved across cells to cancel drift: every ready first repeat runs
    # before any second one, and so on.
    priority: lambda w: config["measure"]["repeats"] - int(w.repeat)
    threads: measure_threads
    resources:
        **step_resources("measure", NODES),
        gpu=lambda w: int(w.device == "cuda"),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        artifact=artifact_arg,
        timing=timing_args,
        machine=cell_machine,
    shell:
        "deploybench measure {params.model} --backend {wildcards.backend}"
        " --precision {wildcards.precision} --batch {wildcards.batch} {params.artifact}"
        " --device {wildcards.device} {params.timing} --out {output:q} > {log:q} 2>&1"
