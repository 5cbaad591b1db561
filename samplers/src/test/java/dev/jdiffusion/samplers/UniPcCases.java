package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.ConformanceCase.num;

import java.util.Map;

/** Cases of kind {@code a1111_unipc}: A1111's copy of UniPC on its own VP time grid, compared in the reference's scaling. */
final class UniPcCases {
    private UniPcCases() {
    }

    static void run(ConformanceCase c, Errors e) {
        Map<String, Object> call = c.map("call");
        int steps = (int) num(call.get("steps"));
        UniPc.Variant variant = UniPc.Variant.valueOf(((String) call.get("variant")).toUpperCase());
        UniPc.SkipType skip = switch ((String) call.get("skip_type")) {
            case "time_uniform" -> UniPc.SkipType.TIME_UNIFORM;
            case "time_quadratic" -> UniPc.SkipType.TIME_QUADRATIC;
            case "logSNR" -> UniPc.SkipType.LOG_SNR;
            default -> throw new AssertionError("skip type " + call.get("skip_type"));
        };
        Map<String, Object> tol = c.map("tolerance", "float64");
        double rel = num(tol.get("rel_l2_err"));
        double abs = num(tol.get("max_abs_err"));
        DiscreteSchedule schedule = DiscreteSchedule.of(c.tensor("alphas_cumprod"));
        e.compare("timesteps", UniPc.a1111Times(schedule, steps, skip), c.tensor("timesteps"), rel, abs);
        double[] sigmas = UniPc.a1111Sigmas(schedule, steps, skip);
        SamplerConformanceTest.CountingDenoiser model =
                new SamplerConformanceTest.CountingDenoiser(ToyDenoiser.of(c, c.map("denoiser"), "toy."));
        double[] x = ConformanceCase.scale(c.tensor("x_T"), Math.sqrt(1 + sigmas[0] * sigmas[0]));
        SamplerConformanceTest.Recorder rec = new SamplerConformanceTest.Recorder();
        UniPc sampler = new UniPc((int) num(call.get("order")), variant, Boolean.TRUE.equals(call.get("lower_order_final")));
        double[] out = sampler.sample(model, x, sigmas, (a, b) -> {
            throw new AssertionError("UniPC draws no noise");
        }, rec);
        double end = sigmas[steps];
        e.compare("x_final", ConformanceCase.scale(out, 1 / Math.sqrt(1 + end * end)), c.tensor("x_final"), rel, abs);
        e.check(rec.steps.size() == c.rows("steps.x"), "steps: got " + rec.steps.size() + ", expected " + c.rows("steps.x"));
        for (int i = 0; i < Math.min(rec.steps.size(), c.rows("steps.x")); i++) {
            double[] after = i + 1 < rec.steps.size() ? rec.steps.get(i + 1).x() : out;
            double s = sigmas[i + 1];
            e.compare("steps.x[" + i + "]", ConformanceCase.scale(after, 1 / Math.sqrt(1 + s * s)), c.row("steps.x", i),
                    rel, abs);
        }
        UniPc.VpTime vp = new UniPc.VpTime(schedule.alphasCumprod());
        int n = schedule.timesteps();
        double[] tau = model.sigmas.stream().mapToDouble(s -> (vp.timeOfSigma(s) - 1.0 / n) * n).toArray();
        double[] ref = c.tensor("model_calls.tau");
        e.check(tau.length == ref.length, "model calls: got " + tau.length + ", expected " + ref.length);
        if (tau.length == ref.length) {
            e.compare("model_calls.tau", tau, ref, rel, 1e-6);
        }
    }
}
