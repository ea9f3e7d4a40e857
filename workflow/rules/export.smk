from deploybench.config import model_args


def model_inputs(w):
    model = PLAN.model(w.model)
    return {
        "config": model["config"],
        "checkpoint": PLAN.checkpoint(w.model),
        "data": PLAN.dataset_dir(model["dataset"]),
    }


rule export_onnx:
    input:
        unpack(model_inputs),
    output:
        onnx=f"{PLAN.results_dir()}/export/{{model}}.onnx",
        result=f"{PLAN.results_dir()}/export/{{model}}.json",
    log:
        "logs/export/{model}.log",
    params:
        model=lambda w: model_args(PLAN, w.model),
        opset=config["export"]["opset"],
        dynamic=(
            f"--dynamic-batch {max(config['matrix']['batches'])}"
            if PLAN.dynamic_batch
            else ""
        ),
    shell:
        "deploybench export {params.model} --opset {params.opset} {params.dynamic}"
        " --onnx {output.onnx} --out {output.result} > {log} 2>&1"
