package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.ConformanceCase.num;

import java.util.Map;

/**
 * Cases of kind {@code compvis_ddim} and {@code compvis_plms}. The reference works on x_t with
 * unit variance (x_t = √ᾱ x0 + √(1 − ᾱ) eps); the samplers here work on x_t/√ᾱ, so the runner
 * converts at the boundary and compares in the reference's scaling.
 */
final class CompVisCases {
    private CompVisCases() {
    }

    static void run(ConformanceCase c, Errors e, boolean plms) {
        Map<String, Object> call = c.map("call");
        int steps = (int) num(call.get("S"));
        double eta = num(call.get("eta"));
        Map<String, Object> tol = c.map("tolerance", "float64");
        double rel = num(tol.get("rel_l2_err"));
        double abs = num(tol.get("max_abs_err"));
        double[] acp = c.tensor("alphas_cumprod");
        DiscreteSchedule schedule = DiscreteSchedule.of(acp);
        int[] ts = schedule.ddimTimesteps(steps);
        double[] sigmas = schedule.ddimSigmas(steps);
        int n = ts.length;
        // the schedule's tables as the reference exposes them
        double[] alphas = new double[n];
        double[] alphasPrev = new double[n];
        double[] ddimSigmas = new double[n];
        double[] tsD = new double[n];
        for (int i = 0; i < n; i++) {
            alphas[i] = acp[ts[i]];
            alphasPrev[i] = i == 0 ? acp[0] : acp[ts[i - 1]];
            ddimSigmas[i] = eta * Math.sqrt((1 - alphasPrev[i]) / (1 - alphas[i]) * (1 - alphas[i] / alphasPrev[i]));
            tsD[i] = ts[i];
        }
        e.compare("ddim_timesteps", tsD, c.tensor("ddim_timesteps"), 0, 0);
        e.compare("ddim_alphas", alphas, c.tensor("ddim_alphas"), rel, abs);
        e.compare("ddim_alphas_prev", alphasPrev, c.tensor("ddim_alphas_prev"), rel, abs);
        e.compare("ddim_sigmas", ddimSigmas, c.tensor("ddim_sigmas"), rel, abs);

        SamplerConformanceTest.CountingDenoiser model =
                new SamplerConformanceTest.CountingDenoiser(ToyDenoiser.of(c, c.map("denoiser"), "toy."));
        double[] xT = c.tensor("x_T");
        double[] x = ConformanceCase.scale(xT, Math.sqrt(1 + sigmas[0] * sigmas[0]));
        SamplerConformanceTest.StoredNoise noise = new SamplerConformanceTest.StoredNoise(c, x.length);
        SamplerConformanceTest.Recorder rec = new SamplerConformanceTest.Recorder();
        Sampler sampler = plms ? new Plms() : new Ddim(eta);
        double[] out = sampler.sample(model, x, sigmas, noise, rec);
        e.compare("x_final", ConformanceCase.scale(out, 1 / Math.sqrt(1 + sigmas[n] * sigmas[n])), c.tensor("x_final"), rel, abs);
        e.check(rec.steps.size() == c.rows("steps.x"), "steps: got " + rec.steps.size() + ", expected " + c.rows("steps.x"));
        for (int i = 0; i < Math.min(rec.steps.size(), c.rows("steps.x")); i++) {
            // the reference records x after step i, which is the next step's start (or the result)
            double[] after = i + 1 < rec.steps.size() ? rec.steps.get(i + 1).x() : out;
            double next = sigmas[i + 1];
            e.compare("steps.x[" + i + "]", ConformanceCase.scale(after, 1 / Math.sqrt(1 + next * next)), c.row("steps.x", i), rel, abs);
            e.compare("steps.pred_x0[" + i + "]", rec.steps.get(i).denoised(), c.row("steps.pred_x0", i), rel, abs);
        }
        double[] calledT = model.sigmas.stream().mapToDouble(schedule::sigmaToT).toArray();
        double[] refT = c.tensor("model_calls.t");
        e.check(calledT.length == refT.length, "model calls: got " + calledT.length + ", expected " + refT.length);
        if (calledT.length == refT.length) {
            e.compare("model_calls.t", calledT, refT, rel, 1e-6);
        }
        SamplerConformanceTest.compareNoiseCalls(c, e, noise);
    }
}
