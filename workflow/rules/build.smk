import shlex

IN_JOB = "decided in the job"


def machine_state(backend, device, precision):
    # A job parameter: when the machine gains (or loses) what a cell needs, the value changes
    # and Snakemake reruns the job, instead of keeping a result that says "skipped". In a
    # container or on a cluster this host is not the machine that matters: each job decides.
    if not STEPS_HERE:
        return IN_JOB
    from deploybench.unavailable import machine_reason

    return machine_reason(backend, device, precision) or "available"


def build_command(plan, backend, device, precision):
    b = config["build"]
    cache = b["tensorrt_timing_cache"]
    cache = cache and os.path.join(plan.results_dir(), cache)
    return (
        f"deploybench build --backend {backend} --device {device} --precision {precision}"
        f" --calibration-images {b['calibration_images']}"
        f" --calibration-method {b['calibration_method']}"
        f" --calibration-split {b['calibration_split']}"
        f" --workspace-mib {b['tensorrt_workspace_mib']}"
        + (f" --timing-cache {shlex.quote(cache)}" if cache else "")
    )


def build_source(backend, device, precision):
    return lambda w: plan(w).build_source(w.model, w.shape, backend, device, precision)


rule quantize_onnxruntime_int8:
    input:
        unpack(model_inputs),
        source=build_source("onnxruntime", "cpu", "int8"),
    output:
        model=PLAN.built("{model}", "{shape}", "onnxruntime", "cpu", "int8"),
        result=PLAN.build_result("{model}", "{shape}", "onnxruntime", "cpu", "int8"),
    log:
        "logs/{profile}/build/{model}/{shape}/onnxruntime-cpu-int8.log",
    wildcard_constraints:
        shape=SHAPE,
    resources:
        **step_resources("build", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), "onnxruntime", "cpu", "int8"),
        machine=machine_state("onnxruntime", "cpu", "int8"),
    shell:
        "{params.build} {params.model} --onnx {input.source:q} --artifact {output.model:q}"
        " --out {output.result:q} > {log:q} 2>&1"


# TensorRT int8 is built from this symmetric int8 QDQ model (quantized on the CPU; made only
# where TensorRT int8 can run).
rule quantize_tensorrt_qdq:
    input:
        unpack(model_inputs),
        source=build_source("qdq", "cpu", "int8"),
    output:
        model=PLAN.built("{model}", "{shape}", "qdq", "cpu", "int8"),
        result=PLAN.build_result("{model}", "{shape}", "qdq", "cpu", "int8"),
    log:
        "logs/{profile}/build/{model}/{shape}/tensorrt-int8-qdq.log",
    wildcard_constraints:
        shape=SHAPE,
    resources:
        **step_resources("build", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), "qdq", "cpu", "int8"),
        machine=machine_state("qdq", "cpu", "int8"),
    shell:
        "{params.build} {params.model} --onnx {input.source:q} --artifact {output.model:q}"
        " --out {output.result:q} > {log:q} 2>&1"


rule convert_onnxruntime_fp16:
    input:
        unpack(model_inputs),
        source=build_source("onnxruntime", "cuda", "fp16"),
    output:
        model=PLAN.built("{model}", "{shape}", "onnxruntime", "cuda", "fp16"),
        result=PLAN.build_result("{model}", "{shape}", "onnxruntime", "cuda", "fp16"),
    log:
        "logs/{profile}/build/{model}/{shape}/onnxruntime-cuda-fp16.log",
    wildcard_constraints:
        shape=SHAPE,
    resources:
        **step_resources("build", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), "onnxruntime", "cuda", "fp16"),
        machine=machine_state("onnxruntime", "cuda", "fp16"),
    shell:
        "{params.build} {params.model} --onnx {input.source:q} --artifact {output.model:q}"
        " --out {output.result:q} > {log:q} 2>&1"


rule quantize_openvino_int8:
    input:
        unpack(model_inputs),
        source=build_source("openvino", "cpu", "int8"),
    output:
        model=PLAN.built("{model}", "{shape}", "openvino", "cpu", "int8"),
        weights=PLAN.built("{model}", "{shape}", "openvino", "cpu", "int8").replace(
            ".xml", ".bin"
        ),
        result=PLAN.build_result("{model}", "{shape}", "openvino", "cpu", "int8"),
    log:
        "logs/{profile}/build/{model}/{shape}/openvino-cpu-int8.log",
    wildcard_constraints:
        shape=SHAPE,
    resources:
        **step_resources("build", NODES),
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), "openvino", "cpu", "int8"),
        machine=machine_state("openvino", "cpu", "int8"),
    shell:
        "{params.build} {params.model} --onnx {input.source:q} --artifact {output.model:q}"
        " --out {output.result:q} > {log:q} 2>&1"


rule build_tensorrt_engine:
    input:
        unpack(model_inputs),
        source=lambda w: plan(w).build_source(
            w.model, w.shape, "tensorrt", "cuda", w.precision
        ),
    output:
        engine=f"{PLAN.results_dir()}/build/{{model}}/{{shape}}/tensorrt-{{precision}}.engine",
        result=f"{PLAN.results_dir()}/build/{{model}}/{{shape}}/tensorrt-{{precision}}.json",
    log:
        # The build log is kept: TensorRT's warnings say which layers fell back and why.
        "logs/{profile}/build/{model}/{shape}/tensorrt-cuda-{precision}.log",
    wildcard_constraints:
        shape=SHAPE,
        precision="fp32|fp16|int8",
    resources:
        **step_resources("build", NODES),
        gpu=1,
    params:
        model=lambda w: model_args(PLAN, w.model, w.shape),
        build=lambda w: build_command(plan(w), "tensorrt", "cuda", w.precision),
        machine=lambda w: machine_state("tensorrt", "cuda", w.precision),
        max_batch=lambda w: PLAN.max_batch(w.model),
    shell:
        "{params.build} {params.model} --max-batch {params.max_batch}"
        " --onnx {input.source:q} --artifact {output.engine:q}"
        " --out {output.result:q} > {log:q} 2>&1"
