# One measure group per model x input shape x device x batch: every planned backend and
# precision of that device, timed side by side in one window (docs/methodology.md, "What the numbers mean").
# The cells of a device are the same for every model, so each device has one rule.
for DEVICE in MEASURE_DEVICES:

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
            f"{PLAN.logs_dir()}/measure/{{model}}/{{shape}}/{DEVICE}/b{{batch}}.log",
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
            machine=lambda w, device=DEVICE: group_machine(w, device),
        shell:
            "deploybench measure {params.model} --device {params.device}"
            " --batch {wildcards.batch} {params.cells} --settings {input.settings:q}"
            " > {log:q} 2>&1"
