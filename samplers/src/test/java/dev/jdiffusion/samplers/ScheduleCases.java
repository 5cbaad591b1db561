package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.ConformanceCase.num;

import java.util.Map;

/** Cases of kind {@code schedule_set}: every entry computed and compared elementwise with its own tolerance. */
final class ScheduleCases {
    private ScheduleCases() {
    }

    /**
     * Whether this runner knows the set: the k-diffusion continuous schedules, the SD 1.x discrete
     * schedule and ComfyUI's schedulers.
     */
    static boolean handles(ConformanceCase c) {
        return c.name.endsWith("schedules/kdiffusion_continuous") || c.name.endsWith("schedules/sd1_discrete")
                || c.name.endsWith("/schedulers");
    }

    static void run(ConformanceCase c, Errors e) {
        e.relName = "max_rel_err";
        for (Object o : ConformanceCase.list(c.manifest.get("entries"))) {
            Map<String, Object> entry = ConformanceCase.asMap(o);
            String name = (String) entry.get("tensor");
            double[] got = c.name.endsWith("/schedulers") ? computeComfy(c, entry, name) : compute(c, entry, name);
            double[] ref = c.tensor(name);
            Map<String, Object> tol = ConformanceCase.asMap(entry.get("tolerance"));
            boolean exact = Boolean.TRUE.equals(tol.get("exact"));
            double rel = exact ? 0 : num(tol.get("rel"));
            double abs = exact ? 0 : num(tol.get("abs"));
            compareElementwise(e, name, got, ref, rel, abs);
        }
    }

    /** |got − ref| <= abs or <= rel·|ref| for every element; the metrics record the worst relative error. */
    static void compareElementwise(Errors e, String name, double[] got, double[] ref, double rel, double abs) {
        if (got.length != ref.length) {
            e.check(false, name + ": got " + got.length + " values, expected " + ref.length);
            return;
        }
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs(got[i] - ref[i]);
            double r = ref[i] == 0 ? d : d / Math.abs(ref[i]);
            e.worstRel = Math.max(e.worstRel, Double.isNaN(r) ? Double.POSITIVE_INFINITY : r);
            e.worstAbs = Math.max(e.worstAbs, Double.isNaN(d) ? Double.POSITIVE_INFINITY : d);
            boolean bothNan = Double.isNaN(got[i]) && Double.isNaN(ref[i]);
            if (!bothNan && !(d <= abs || d <= rel * Math.abs(ref[i]))) {
                e.check(false, String.format("%s[%d]: got %.17g, expected %.17g", name, i, got[i], ref[i]));
                return;
            }
        }
    }

    /** One entry of ComfyUI's scheduler set, from its tensor name ({@code <scheduler>/n<steps>[_suffix]}) and arguments. */
    private static double[] computeComfy(ConformanceCase c, Map<String, Object> entry, String name) {
        ModelSampling ms = ModelSampling.stableDiffusion();
        switch (name) {
            case "model_sampling.sigmas":
                return ms.sigmas();
            case "model_sampling.log_sigmas":
                return ms.logSigmas();
            case "timestep_of_sigma_points":
                return map(c.tensor("sigma_points"), s -> ms.timestep(s));
            case "sigma_of_t_points":
                return map(c.tensor("t_points"), ms::sigma);
            case "percent_to_sigma":
                return map(c.tensor("percent_points"), ms::percentToSigma);
            default:
                break;
        }
        String scheduler = name.substring(0, name.indexOf('/'));
        String variant = name.substring(name.indexOf("/n") + 2);
        int cut = variant.indexOf('_');
        int steps = Integer.parseInt(cut < 0 ? variant : variant.substring(0, cut));
        String suffix = cut < 0 ? "" : variant.substring(cut + 1);
        double denoise = suffix.startsWith("denoise") ? Double.parseDouble(suffix.substring("denoise".length())) : 1;
        boolean discard = suffix.equals("discard_penultimate");
        Map<String, Object> args = ConformanceCase.asMap(entry.getOrDefault("args", Map.of()));
        int n = discard ? steps + 1 : steps;
        double[] s;
        if (scheduler.startsWith("gits_coeff")) {
            s = AlignYourSteps.gits(Double.parseDouble(scheduler.substring("gits_coeff".length())), n, denoise);
        } else {
            s = switch (scheduler) {
                case "simple" -> ms.simple(n);
                case "normal" -> ms.normal(n);
                case "sgm_uniform" -> ms.sgmUniform(n);
                case "ddim_uniform" -> ms.ddimUniform(n);
                case "beta" -> ms.beta(n, num(args.getOrDefault("alpha", 0.6)), num(args.getOrDefault("beta", 0.6)));
                case "linear_quadratic" -> Schedules.linearQuadratic(n, ms.sigmaMax());
                case "kl_optimal" -> Schedules.klOptimal(n, ms.sigmaMin(), ms.sigmaMax());
                case "karras" -> float32(Schedules.karras(n, ms.sigmaMin(), ms.sigmaMax(), 7));
                case "exponential" -> float32(Schedules.exponential(n, ms.sigmaMin(), ms.sigmaMax()));
                case "laplace" -> Schedules.laplace((int) num(args.get("n")), num(args.get("sigma_min")),
                        num(args.get("sigma_max")), num(args.get("mu")), num(args.get("beta")));
                case "ays_SD1" -> AlignYourSteps.sigmas(AlignYourSteps.Model.SD1, n, denoise);
                case "ays_SDXL" -> AlignYourSteps.sigmas(AlignYourSteps.Model.SDXL, n, denoise);
                default -> throw new AssertionError("unknown ComfyUI scheduler entry " + name);
            };
        }
        return discard ? ScheduleNames.withoutPenultimate(s) : s;
    }

    private static double[] map(double[] in, java.util.function.DoubleUnaryOperator f) {
        double[] r = new double[in.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = f.applyAsDouble(in[i]);
        }
        return r;
    }

    private static double[] float32(double[] v) {
        return map(v, x -> (float) x);
    }

    private static double[] compute(ConformanceCase c, Map<String, Object> entry, String name) {
        Map<String, Object> args = ConformanceCase.asMap(entry.getOrDefault("args", Map.of()));
        String fn = entry.get("function") == null ? "" : (String) entry.get("function");
        if (fn.startsWith("get_sigmas_")) {
            int n = (int) num(args.get("n"));
            return switch (fn) {
                case "get_sigmas_karras" -> Schedules.karras(n, num(args.get("sigma_min")), num(args.get("sigma_max")),
                        num(args.get("rho")));
                case "get_sigmas_exponential" -> Schedules.exponential(n, num(args.get("sigma_min")),
                        num(args.get("sigma_max")));
                case "get_sigmas_polyexponential" -> Schedules.polyexponential(n, num(args.get("sigma_min")),
                        num(args.get("sigma_max")), num(args.get("rho")));
                case "get_sigmas_vp" -> Schedules.vp(n, num(args.get("beta_d")), num(args.get("beta_min")),
                        num(args.get("eps_s")));
                default -> throw new AssertionError("unknown schedule " + fn);
            };
        }
        double[] betas = DiscreteSchedule.scaledLinearBetas(1000, 0.00085, 0.012);
        double[] acp = DiscreteSchedule.alphasCumprod(betas);
        switch (name) {
            case "betas":
                return betas;
            case "alphas_cumprod":
                return acp;
            case "sigmas_table":
                return DiscreteSchedule.of(acp).sigmas();
            case "alphas_cumprod@f32":
                return DiscreteSchedule.stableDiffusionFloat32().alphasCumprod();
            default:
                break;
        }
        Object acpName = entry.containsKey("alphas_cumprod") ? entry.get("alphas_cumprod") : args.get("alphas_cumprod");
        DiscreteSchedule schedule = DiscreteSchedule.of(c.tensor((String) acpName));
        return switch (fn) {
            case "k_diffusion.external.CompVisDenoiser(model).sigmas" -> schedule.sigmas();
            case "CompVisDenoiser.get_sigmas" -> schedule.uniform((int) num(args.get("n")));
            case "CompVisDenoiser.sigma_to_t" -> {
                double[] s = c.tensor((String) args.get("sigma"));
                boolean quantize = Boolean.TRUE.equals(args.get("quantize")) || Boolean.TRUE.equals(entry.get("quantize"));
                double[] t = new double[s.length];
                for (int i = 0; i < s.length; i++) {
                    t[i] = quantize ? schedule.sigmaToTQuantized(s[i]) : schedule.sigmaToT(s[i]);
                }
                yield t;
            }
            case "CompVisDenoiser.t_to_sigma" -> {
                double[] t = c.tensor((String) args.get("t"));
                double[] s = new double[t.length];
                for (int i = 0; i < t.length; i++) {
                    s[i] = schedule.tToSigma(t[i]);
                }
                yield s;
            }
            default -> throw new AssertionError("unknown schedule entry " + name + " (" + fn + ")");
        };
    }
}
