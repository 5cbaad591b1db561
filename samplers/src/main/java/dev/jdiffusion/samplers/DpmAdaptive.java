package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.sigma;
import static dev.jdiffusion.samplers.Sampling.t;

/**
 * DPM-Solver with adaptive step size (Lu et al. 2022, §5, and k-diffusion {@code sample_dpm_adaptive}):
 * a lower- and a higher-order step from the same point estimate the error, and a PID controller
 * (Söderlind 2003) sets the next step size; steps whose error is too large are retried. The number
 * of model evaluations follows the tolerance, not the schedule: as a {@link Sampler} it uses only
 * the schedule's first and last nonzero sigma.
 */
public record DpmAdaptive(int order, double rtol, double atol, double hInit, double pcoeff, double icoeff,
                          double dcoeff, double acceptSafety, double eta, double sNoise) implements Sampler {
    /** The reference's defaults. */
    public DpmAdaptive() {
        this(3, 0.05, 0.0078, 0.05, 0, 1, 0, 0.81, 0, 1);
    }

    public DpmAdaptive {
        if (order != 2 && order != 3) {
            throw new IllegalArgumentException("DPM adaptive order must be 2 or 3, got " + order);
        }
        if (!(rtol > 0) || !(atol > 0) || !(hInit > 0)) {
            throw new IllegalArgumentException("DPM adaptive needs rtol, atol and h_init > 0, got " + rtol + ", " + atol
                    + ", " + hInit);
        }
        Ancestral.check(eta, sNoise);
    }

    /** What one run did: attempts, model evaluations, accepted and rejected steps. */
    public record Info(int steps, int nfe, int accepted, int rejected) {
    }

    /** The final sample and what the run did. */
    public record Run(double[] x, Info info) {
    }

    @Override
    public double[] sample(Denoiser model, double[] x, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        return run(model, x, Sampling.lastNonzero(sigmas), sigmas[0], noise, listener).x();
    }

    /** The reference's own call: from sigmaMax down to sigmaMin. */
    public Run run(Denoiser model, double[] x0, double sigmaMin, double sigmaMax, NoiseSource noise,
                   StepListener listener) {
        if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || Double.isInfinite(sigmaMax)) {
            throw new IllegalArgumentException("DPM adaptive needs 0 < sigma_min < sigma_max, got " + sigmaMin + ", "
                    + sigmaMax);
        }
        int[] nfe = {0};
        Denoiser counted = (xx, s) -> {
            nfe[0]++;
            return model.denoise(xx, s);
        };
        DpmSolver solver = new DpmSolver(counted);
        double tStart = t(sigmaMax);
        double tEnd = t(sigmaMin);
        Pid pid = new Pid(hInit, pcoeff, icoeff, dcoeff, eta > 0 ? 1.5 : order, acceptSafety);
        double[] x = x0.clone();
        double[] xPrev = x;
        double s = tStart;
        int steps = 0;
        int accepted = 0;
        int rejected = 0;
        while (s < tEnd - 1e-5) {
            solver.newStep();
            double t = Math.min(tEnd, s + pid.h);
            double[] an = DpmSolver.ancestral(s, t, tEnd, eta);
            double tTo = an[0];
            double[] denoised = solver.denoisedAtStart(x, s);
            double[] low;
            double[] high;
            if (order == 2) {
                low = solver.step1(x, s, tTo);
                high = solver.step2(x, s, tTo, 0.5);
            } else {
                low = solver.step2(x, s, tTo, 1.0 / 3);
                high = solver.step3(x, s, tTo, 1.0 / 3, 2.0 / 3);
            }
            double sum = 0;
            for (int k = 0; k < x.length; k++) {
                double delta = Math.max(atol, rtol * Math.max(Math.abs(low[k]), Math.abs(xPrev[k])));
                double e = (low[k] - high[k]) / delta;
                sum += e * e;
            }
            double error = Math.sqrt(sum) / Math.sqrt(x.length);
            boolean accept = pid.proposeStep(error);
            if (accept) {
                xPrev = low;
                x = high;
                Vec.addScaled(x, an[1] * sNoise, noise.next(sigma(s), sigma(t)));
                s = t;
                accepted++;
            } else {
                rejected++;
            }
            steps++;
            Sampling.report(listener, new Step(steps - 1, sigma(s), sigma(s), x, denoised,
                    new Step.Adaptive(s, t, pid.h, error, accept)));
        }
        return new Run(x, new Info(steps, nfe[0], accepted, rejected));
    }

    /** PID step-size control on the inverse error, with an arctan limiter. */
    static final class Pid {
        double h;
        private final double b1;
        private final double b2;
        private final double b3;
        private final double acceptSafety;
        private double[] errs;

        Pid(double h, double p, double i, double d, double order, double acceptSafety) {
            this.h = h;
            this.b1 = (p + i + d) / order;
            this.b2 = -(p + 2 * d) / order;
            this.b3 = d / order;
            this.acceptSafety = acceptSafety;
        }

        boolean proposeStep(double error) {
            double inv = 1 / (error + 1e-8);
            if (errs == null) {
                errs = new double[] {inv, inv, inv};
            }
            errs[0] = inv;
            double factor = Math.pow(errs[0], b1) * Math.pow(errs[1], b2) * Math.pow(errs[2], b3);
            factor = 1 + Math.atan(factor - 1);
            boolean accept = factor >= acceptSafety;
            if (accept) {
                errs[2] = errs[1];
                errs[1] = errs[0];
            }
            h *= factor;
            return accept;
        }
    }
}
