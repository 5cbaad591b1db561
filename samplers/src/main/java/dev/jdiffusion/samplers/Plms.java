package dev.jdiffusion.samplers;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Pseudo linear multistep (PNDM, Liu et al. 2022): DDIM steps (eta 0) whose eps is an
 * Adams–Bashforth combination of the last eps values; the first step uses a trial step and the
 * average of the two eps (a second-order Heun-like start), as CompVis's PLMS sampler does.
 */
public record Plms() implements Sampler {
    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        Deque<double[]> history = new ArrayDeque<>(); // raw eps of earlier steps, newest first
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, sigma);
            double[] eps = Vec.derivative(x, denoised, sigma);
            double[] corrected;
            List<double[]> old = new ArrayList<>(history);
            if (old.isEmpty() && next > 0) {
                // a trial DDIM step, and the average of the eps at both ends
                double[] trial = Ddim.update(denoised, eps, next, 0, null);
                double[] trialEps = Vec.derivative(trial, model.denoise(trial, next), next);
                corrected = Vec.lin(0.5, eps, 0.5, trialEps);
            } else if (old.isEmpty()) {
                corrected = eps;
            } else if (old.size() == 1) {
                corrected = Vec.lin(1.5, eps, -0.5, old.get(0));
            } else if (old.size() == 2) {
                corrected = Vec.lin(23.0 / 12, eps, -16.0 / 12, old.get(0), 5.0 / 12, old.get(1));
            } else {
                corrected = new double[eps.length];
                for (int k = 0; k < eps.length; k++) {
                    corrected[k] = (55 * eps[k] - 59 * old.get(0)[k] + 37 * old.get(1)[k] - 9 * old.get(2)[k]) / 24;
                }
            }
            double[] predicted = Vec.lin(1, x, -sigma, corrected);
            Sampling.report(listener, new Step(i, sigma, sigma, x, predicted));
            x = next == 0 ? predicted : Ddim.update(predicted, corrected, next, 0, null);
            history.addFirst(eps);
            if (history.size() > 3) {
                history.removeLast();
            }
        }
        return x;
    }
}
