package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.ConformanceCase.num;

import java.util.Map;

/**
 * Cases of kind {@code comfyui_sampler}: the {@code sample_*} functions of ComfyUI's copy of
 * k-diffusion, driven as ComfyUI's KSampler drives them (its own schedules, starting noise already
 * scaled, noise drawn only where it is used).
 */
final class ComfyUiCases {
    private ComfyUiCases() {
    }

    /** Whether a runner exists for this case's sampler. */
    static boolean handles(ConformanceCase c) {
        return sampler(c) != null;
    }

    private static String name(ConformanceCase c) {
        String fn = (String) c.map("call").get("function");
        return fn.substring(fn.lastIndexOf(".sample_") + ".sample_".length());
    }

    private static Sampler sampler(ConformanceCase c) {
        Map<String, Object> args = ConformanceCase.asMap(c.map("call").getOrDefault("args", Map.of()));
        double eta = num(args, "eta", 1);
        double sNoise = num(args, "s_noise", 1);
        int order = (int) num(args, "max_order", 4);
        return switch (name(c)) {
            case "euler" -> new Euler(KDiffusionCases.churn(args).drawnOnlyWhenUsed());
            case "heun" -> new Heun(KDiffusionCases.churn(args).drawnOnlyWhenUsed());
            case "dpm_2" -> new Dpm2(KDiffusionCases.churn(args).drawnOnlyWhenUsed());
            case "heunpp2" -> new Heunpp2(KDiffusionCases.churn(args));
            case "euler_ancestral" -> new EulerAncestral(eta, sNoise);
            case "dpm_2_ancestral" -> new Dpm2Ancestral(eta, sNoise);
            case "dpmpp_2s_ancestral" -> new DpmPp2sAncestral(eta, sNoise);
            case "lms" -> new Lms((int) num(args, "order", 4), true);
            case "dpmpp_sde" -> new DpmPpSde(eta, sNoise, num(args, "r", 0.5));
            case "dpmpp_2m" -> new DpmPp2m();
            case "dpm_fast" -> new DpmFast(num(args, "eta", 0), sNoise);
            case "dpm_adaptive" -> new DpmAdaptive();
            case "dpmpp_2m_sde" -> new DpmPp2mSde(eta, sNoise, DpmPp2mSde.SolverType.MIDPOINT);
            case "dpmpp_2m_sde_heun" -> new DpmPp2mSde(eta, sNoise, DpmPp2mSde.SolverType.HEUN);
            case "dpmpp_3m_sde" -> new DpmPp3mSde(eta, sNoise);
            case "lcm" -> new Lcm();
            case "ddpm" -> new Ddpm();
            case "gradient_estimation" -> new GradientEstimation(num(args, "ge_gamma", 2), false);
            case "gradient_estimation_cfg_pp" -> new GradientEstimation(num(args, "ge_gamma", 2), true);
            case "euler_cfg_pp" -> new EulerCfgPp();
            case "euler_ancestral_cfg_pp" -> new EulerCfgPp(eta, sNoise);
            case "dpmpp_2m_cfg_pp" -> new DpmPp2mCfgPp();
            case "dpmpp_2s_ancestral_cfg_pp" -> new DpmPp2sAncestralCfgPp(eta, sNoise);
            case "ipndm" -> new Ipndm(order, false);
            case "ipndm_v" -> new Ipndm(order, true);
            case "deis" -> new Deis((int) num(args, "max_order", 3));
            case "res_multistep" -> new ResMultistep(0, sNoise, false);
            case "res_multistep_cfg_pp" -> new ResMultistep(0, sNoise, true);
            case "res_multistep_ancestral" -> new ResMultistep(eta, sNoise, false);
            case "res_multistep_ancestral_cfg_pp" -> new ResMultistep(eta, sNoise, true);
            case "seeds_2" -> new Seeds(2, eta, sNoise, num(args, "r", 0.5), Double.NaN);
            case "seeds_3" -> new Seeds(3, eta, sNoise, num(args, "r_1", 1 / 3.0), num(args, "r_2", 2 / 3.0));
            case "sa_solver", "sa_solver_pece" -> {
                Map<String, Object> ms = c.map("model_sampling");
                yield new SaSolver((int) num(args, "predictor_order", 3), (int) num(args, "corrector_order", 4),
                        num(args, "eta", 1), sNoise, name(c).equals("sa_solver_pece") || Boolean.TRUE.equals(args.get("use_pece")),
                        Boolean.TRUE.equals(args.get("simple_order_2")), num(ms.get("percent_to_sigma(0.2)")),
                        num(ms.get("percent_to_sigma(0.8)")));
            }
            case "unipc" -> new UniPc.ComfyUi(UniPc.Variant.BH1);
            case "unipc_bh2" -> new UniPc.ComfyUi(UniPc.Variant.BH2);
            case "er_sde" -> new ErSde(sNoise, (int) num(args, "max_stage", 3));
            default -> null;
        };
    }

    static void run(ConformanceCase c, Errors e) {
        Map<String, Object> tol = c.map("tolerance", "float64");
        double rel = num(tol.get("rel_l2_err"));
        double abs = num(tol.get("max_abs_err"));
        SamplerConformanceTest.CountingDenoiser model = new SamplerConformanceTest.CountingDenoiser(denoiser(c));
        double[] x = c.tensor("x_init");
        double[] sigmas = c.tensor("sigmas");
        SamplerConformanceTest.StoredNoise noise = new SamplerConformanceTest.StoredNoise(c, x.length);
        SamplerConformanceTest.Recorder rec = new SamplerConformanceTest.Recorder();
        double[] out;
        String name = name(c);
        // dpm_fast and dpm_adaptive through Sampler.sample, which is ComfyUI's wrapper: from sigmas[0] to the
        // last nonzero sigma (dpm_fast in len(sigmas) - 1 model calls, dpm_adaptive as its controller decides).
        out = sampler(c).sample(model, x, sigmas, noise, rec);
        e.compare("x_final", out, c.tensor("x_final"), rel, abs);
        if (name.startsWith("unipc")) {
            compareUniPcSteps(c, e, rec.steps, rel, abs);
        } else if (name.equals("ipndm") || name.equals("ipndm_v") || name.equals("deis")) {
            // Upstream reports its unchanged input as x at every step; only denoised is comparable.
            SamplerConformanceTest.compareDenoisedSteps(c, e, rec.steps, rel, abs);
        } else {
            SamplerConformanceTest.compareSteps(c, e, rec.steps, rel, abs);
        }
        SamplerConformanceTest.compareModelCalls(c, e, model.sigmas, rel, abs);
        SamplerConformanceTest.compareNoiseCalls(c, e, noise);
    }

    /**
     * ComfyUI's UniPC reports x in its VP scaling (x / sqrt(1 + sigma^2)) and, at the last step, the
     * final x instead of the x the estimate was made at; the steps report k-diffusion's x at each
     * step's sigma. So rows are compared after scaling, the last x row against the final result.
     */
    private static void compareUniPcSteps(ConformanceCase c, Errors e, java.util.List<Step> steps, double rel, double abs) {
        SamplerConformanceTest.compareDenoisedSteps(c, e, steps, rel, abs);
        int n = Math.min(steps.size(), c.rows("steps.x")) - 1;
        for (int i = 0; i < n; i++) {
            Step st = steps.get(i);
            double scale = 1 / Math.sqrt(1 + st.sigma() * st.sigma());
            double[] vp = st.x().clone();
            for (int k = 0; k < vp.length; k++) {
                vp[k] *= scale;
            }
            e.compare("steps.x[" + i + "]", vp, c.row("steps.x", i), rel, abs);
        }
    }

    /** The toy model: one toy denoiser, or ComfyUI's cfg_function over a cond and an uncond toy. */
    static Denoiser denoiser(ConformanceCase c) {
        Map<String, Object> spec = c.map("denoiser");
        if (!"cfg".equals(spec.get("type"))) {
            return ToyDenoiser.of(c, spec, "toy.");
        }
        ToyDenoiser cond = ToyDenoiser.of(c, ConformanceCase.asMap(spec.get("cond")), "toy.cond.");
        if (spec.get("uncond") == null) {
            return cond;
        }
        ToyDenoiser uncond = ToyDenoiser.of(c, ConformanceCase.asMap(spec.get("uncond")), "toy.uncond.");
        double scale = num(spec.get("cfg_scale"));
        return (GuidedDenoiser) (x, sigma) -> {
            double[] u = uncond.denoise(x, sigma);
            double[] k = cond.denoise(x, sigma);
            double[] den = new double[x.length];
            for (int i = 0; i < den.length; i++) {
                den[i] = u[i] + scale * (k[i] - u[i]);
            }
            return new GuidedDenoiser.Prediction(den, u);
        };
    }
}
