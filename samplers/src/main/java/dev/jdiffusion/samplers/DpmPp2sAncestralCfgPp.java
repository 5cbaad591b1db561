package dev.jdiffusion.samplers;

/**
 * DPM-Solver++(2S) ancestral with CFG++ (ComfyUI {@code sample_dpmpp_2s_ancestral_cfg_pp}). As in
 * ComfyUI, the final update uses the unconditional prediction of the second (midpoint) evaluation.
 */
public record DpmPp2sAncestralCfgPp(double eta, double sNoise) implements Sampler {
    public DpmPp2sAncestralCfgPp() {
        this(1, 1);
    }

    public DpmPp2sAncestralCfgPp {
        Ancestral.check(eta, sNoise);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, s);
            double[] du = Sampling.ancestralStep(s, next, eta);
            Sampling.report(listener, new Step(i, s, s, x, p.denoised()));
            double[] den = p.denoised();
            if (du[0] == 0) {
                x = den.clone();
            } else {
                double t = Sampling.t(s);
                double tNext = Sampling.t(du[0]);
                double h = tNext - t;
                double sMid = Sampling.sigma(t + h / 2);
                double[] x2 = new double[x.length];
                double a = sMid / s;
                double b = -Math.expm1(-h / 2);
                for (int k = 0; k < x.length; k++) {
                    x2[k] = a * (x[k] + (den[k] - p.uncond()[k])) + b * den[k];
                }
                GuidedDenoiser.Prediction p2 = GuidedDenoiser.evaluate(model, x2, sMid);
                double a2 = du[0] / s;
                double b2 = -Math.expm1(-h);
                double[] out = new double[x.length];
                for (int k = 0; k < x.length; k++) {
                    out[k] = a2 * (x[k] + (den[k] - p2.uncond()[k])) + b2 * p2.denoised()[k];
                }
                x = out;
            }
            if (next > 0) {
                Vec.addScaled(x, sNoise * du[1], noise.next(s, next));
            }
        }
        return x;
    }
}
