import shlex

from deploybench.measure.group import group_cell_args, group_timing_args
from deploybench.measure.run import FILE_BACKENDS
from deploybench.results import Cell


def cell_inputs(w):
    inputs = model_inputs(w)
    artifact = plan(w).artifact(w.model, w.shape, w.backend, w.device, w.precision)
    if artifact:
        inputs["artifact"] = artifact
    return inputs


def artifact_arg(_, input):
    return (
        f"--artifact {shlex.quote(input.artifact)}"
        if "artifact" in input.keys()
        else ""
    )


RUNNABLE = ("available", IN_JOB)


def cell_machine(w):
    return machine_state(w.backend, w.device, w.precision)


def group_inputs(w, device):
    """What a measure group runs: the model, each cell's artifact, the export's saved input.
    A changed artifact reruns the whole group."""
    inputs = model_inputs(w)
    combos = plan(w).group_combos(device)
    for backend, precision in combos:
        artifact = plan(w).artifact(w.model, w.shape, backend, device, precision)
        if artifact:
            inputs[f"{backend}_{precision}"] = artifact
    if any(backend in FILE_BACKENDS for backend, _ in combos):
        inputs["saved_input"] = plan(w).saved_input(w.model, w.shape)
    return inputs


def group_machine(w, device):
    return {
        f"{b} {p}": machine_state(b, device, p) for b, p in plan(w).group_combos(device)
    }


def measure_threads(w, device):
    # Timing owns the machine: no other job may run beside a measure group (a group this
    # machine cannot run at all only writes why, on one core). On a cluster the job has its
    # node to itself (--exclusive) and asks for the cores the profile's `set-threads` gives.
    if not any(m in RUNNABLE for m in group_machine(w, device).values()):
        return 1
    return max(1, config["measure"]["threads"]) if ON_CLUSTER else workflow.cores


# One measure group per model x input shape x device x batch: every planned backend and
# precision of that device, timed side by side in one window (README, "What the numbers mean").
# The cells of a device are the same for every model, so each device has one rule.
MEASURE_RULES = []
for DEVICE in PLAN.config["matrix"]["devices"]:
    if not PLAN.group_combos(DEVICE):
        continue

    rule:
        name:
            f"measure_{DEVICE}"
        input:
            unpack(lambda w, device=DEVICE: group_inputs(w, device)),
        output:
            [
                PLAN.cell_result(
                    "measure",
                    Cell("{model}", "", b, p, "{batch}", DEVICE, "{shape}"),
                )
                for b, p in PLAN.group_combos(DEVICE)
            ],
        log:
            f"logs/{{profile}}/measure/{{model}}/{{shape}}/{DEVICE}/b{{batch}}.log",
        wildcard_constraints:
            shape=SHAPE,
            batch="[0-9]+",
        threads: lambda w, device=DEVICE: measure_threads(w, device)
        resources:
            **step_resources("measure", NODES),
            gpu=int(DEVICE == "cuda"),
        params:
            model=lambda w: model_args(PLAN, w.model, w.shape),
            device=DEVICE,
            cells=lambda w, output, device=DEVICE: group_cell_args(
                plan(w), w.model, w.shape, device, list(output)
            ),
            timing=group_timing_args(config["measure"]),
            machine=lambda w, device=DEVICE: group_machine(w, device),
        shell:
            "deploybench measure {params.model} --device {params.device}"
            " --batch {wildcards.batch} {params.cells} {params.timing} > {log:q} 2>&1"

    MEASURE_RULES.append(f"measure_{DEVICE}")
