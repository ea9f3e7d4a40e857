rule quantize_onnx_int8:
    input:
        unpack(model_inputs),
        onnx=PLAN.onnx("{model}"),
    output:
        model=PLAN.quantized("{model}"),
        result=PLAN.build_result("{model}"),
    log:
        "logs/build/{model}/onnxruntime-int8.log",
    params:
        model=lambda w: model_args(PLAN, w.model),
        images=config["build"]["calibration_images"],
        method=config["build"]["calibration_method"],
    shell:
        "deploybench build {params.model} --backend onnxruntime --precision int8"
        " --onnx {input.onnx} --artifact {output.model} --calibration-images {params.images}"
        " --calibration-method {params.method} --out {output.result} > {log} 2>&1"
