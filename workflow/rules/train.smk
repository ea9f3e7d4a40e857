# Training speed and memory: one job per model x device x training precision, its own training
# step on its train split (docs/methodology.md, "Training"). Like a measure group, it owns the
# machine while it times.
rule train:
    input:
        unpack(train_inputs),
    output:
        f"{PLAN.results_dir()}/train/{{model}}/{{device}}/{{precision}}.json",
    log:
        f"{PLAN.logs_dir()}/train/{{model}}/{{device}}/{{precision}}.log",
    wildcard_constraints:
        device="cpu|cuda",
        precision="fp32|amp",
    threads: train_threads
    resources:
        **step_resources("train", NODES),
        gpu=lambda w: int(w.device == "cuda"),
    params:
        model=lambda w: train_model_args(plan(w), w.model),
        machine=lambda w: machine_state("pytorch", w.device, "fp32"),
    shell:
        "deploybench train {params.model} --device {wildcards.device}"
        " --precision {wildcards.precision} --threads {threads}"
        " --settings {input.settings:q} --out {output:q} > {log:q} 2>&1"
