package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.ConformanceCase.num;

import java.util.Map;

/** Cases of kind {@code kdiffusion_sampler}: crowsonkb/k-diffusion's {@code sample_*} functions. */
final class KDiffusionCases {
    private KDiffusionCases() {
    }

    static void run(ConformanceCase c, Errors e) {
        Map<String, Object> call = c.map("call");
        Map<String, Object> args = ConformanceCase.asMap(call.getOrDefault("args", Map.of()));
        String fn = (String) call.get("function");
        Map<String, Object> tol = c.map("tolerance", "float64");
        double rel = num(tol.get("rel_l2_err"));
        double abs = num(tol.get("max_abs_err"));
        SamplerConformanceTest.CountingDenoiser model =
                new SamplerConformanceTest.CountingDenoiser(ToyDenoiser.of(c, c.map("denoiser"), "toy."));
        double[] x = c.tensor("x_init");
        SamplerConformanceTest.StoredNoise noise = new SamplerConformanceTest.StoredNoise(c, x.length);
        SamplerConformanceTest.Recorder rec = new SamplerConformanceTest.Recorder();
        double eta = num(args, "eta", 1);
        double sNoise = num(args, "s_noise", 1);
        double[] out;
        switch (fn) {
            case "sample_dpm_fast" -> {
                DpmFast s = new DpmFast(num(args, "eta", 0), sNoise);
                out = s.sample(model, x, num(call.get("sigma_min")), num(call.get("sigma_max")),
                        (int) num(call.get("n")), noise, rec);
            }
            case "sample_dpm_adaptive" -> {
                DpmAdaptive s = new DpmAdaptive((int) num(args.get("order")), num(args.get("rtol")), num(args.get("atol")),
                        num(args.get("h_init")), num(args.get("pcoeff")), num(args.get("icoeff")), num(args.get("dcoeff")),
                        num(args.get("accept_safety")), num(args.get("eta")), sNoise);
                DpmAdaptive.Run run = s.run(model, x, num(call.get("sigma_min")), num(call.get("sigma_max")), noise, rec);
                DpmAdaptive.Info info = run.info();
                out = run.x();
                Map<String, Object> want = c.map("info");
                DpmAdaptive.Info expected = new DpmAdaptive.Info((int) num(want.get("steps")), (int) num(want.get("nfe")),
                        (int) num(want.get("n_accept")), (int) num(want.get("n_reject")));
                e.check(info.equals(expected), "info: got " + info + ", expected " + expected);
                if (rec.steps.size() == c.rows("steps.h")) {
                    e.compare("steps.h", rec.steps.stream().mapToDouble(st -> st.adaptive().h()).toArray(),
                            c.tensor("steps.h"), rel, abs);
                    e.compare("steps.error", rec.steps.stream().mapToDouble(st -> st.adaptive().error()).toArray(),
                            c.tensor("steps.error"), rel, abs);
                    e.compare("steps.t", rec.steps.stream().mapToDouble(st -> st.adaptive().t()).toArray(),
                            c.tensor("steps.t"), rel, abs);
                    e.compare("steps.accepted", rec.steps.stream().mapToDouble(st -> st.adaptive().accepted() ? 1 : 0)
                            .toArray(), c.tensor("steps.accepted"), 0, 0);
                }
            }
            default -> {
                Sampler s = switch (fn) {
                    case "sample_euler" -> new Euler(churn(args));
                    case "sample_heun" -> new Heun(churn(args));
                    case "sample_dpm_2" -> new Dpm2(churn(args));
                    case "sample_euler_ancestral" -> new EulerAncestral(eta, sNoise);
                    case "sample_dpm_2_ancestral" -> new Dpm2Ancestral(eta, sNoise);
                    case "sample_dpmpp_2s_ancestral" -> new DpmPp2sAncestral(eta, sNoise);
                    case "sample_lms" -> new Lms((int) num(args, "order", 4), false);
                    case "sample_dpmpp_sde" -> new DpmPpSde(eta, sNoise, num(args, "r", 0.5));
                    case "sample_dpmpp_2m" -> new DpmPp2m();
                    case "sample_dpmpp_2m_sde" -> new DpmPp2mSde(eta, sNoise,
                            DpmPp2mSde.SolverType.valueOf(((String) args.get("solver_type")).toUpperCase()));
                    case "sample_dpmpp_3m_sde" -> new DpmPp3mSde(eta, sNoise);
                    default -> throw new AssertionError("no sampler for " + fn);
                };
                out = s.sample(model, x, c.tensor("sigmas"), noise, rec);
            }
        }
        e.compare("x_final", out, c.tensor("x_final"), rel, abs);
        SamplerConformanceTest.compareSteps(c, e, rec.steps, rel, abs);
        SamplerConformanceTest.compareModelCalls(c, e, model.sigmas, rel, abs);
        SamplerConformanceTest.compareNoiseCalls(c, e, noise);
    }

    static Churn churn(Map<String, Object> args) {
        return new Churn(num(args, "s_churn", 0), num(args, "s_tmin", 0), num(args, "s_tmax", Double.POSITIVE_INFINITY),
                num(args, "s_noise", 1), true);
    }
}
