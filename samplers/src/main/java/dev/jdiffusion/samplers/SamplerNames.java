package dev.jdiffusion.samplers;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Samplers by the names users type: AUTOMATIC1111's display names ("DPM++ 2M SDE Heun", "Euler a"),
 * ComfyUI's names ({@code dpmpp_2m_sde_gpu}, {@code euler_ancestral}) and the old combined A1111
 * names that still sit in many PNG files ("DPM++ 2M Karras", "LMS Karras"), which also name a
 * schedule. Where the tools differ in a detail (when churn noise is drawn, LMS's last step), the
 * name decides which tool's behaviour is reproduced.
 */
public final class SamplerNames {
    /** The sigmas of a sampler that steps through its own time grid, whatever schedule the user picked. */
    @FunctionalInterface
    public interface TimeGrid {
        double[] sigmas(DiscreteSchedule model, int steps);
    }

    /** The name of the schedule choice that means "the sampler's default" (A1111's "Automatic"). */
    public static final String AUTOMATIC = "Automatic";

    /**
     * A resolved name: the sampler, the schedule the name implies (null: the caller's choice), whether
     * the tool drops the second-to-last sigma of the schedule for this sampler, the factor the tool
     * applies to the user's CFG scale for it (1 except A1111's "DDIM CFG++": 1/12.5), the schedule
     * that "Automatic" stands for with this sampler, and the sampler's own time grid (A1111's DDIM,
     * PLMS, UniPC and DDIM CFG++ step through the model's timesteps and ignore the schedule), or null;
     * and whether A1111 counts it as second order (two model evaluations a step: its prompt-editing
     * schedule spans twice the steps).
     */
    public record Resolved(String name, Sampler sampler, String schedule, boolean discardPenultimateSigma,
                           double cfgScaleMultiplier, String defaultSchedule, TimeGrid timeGrid, boolean secondOrder) {
        /** The number of model evaluations A1111 schedules edited prompts over for {@code steps} steps. */
        public int promptScheduleSteps(int steps) {
            return secondOrder ? 2 * steps : steps;
        }

        /**
         * The schedule that runs when the user asks for {@code requested}: the one the combined name
         * implies, else for "Automatic" the sampler's default; null when the sampler runs on its own
         * time grid.
         */
        public String scheduleFor(String requested) {
            if (timeGrid != null) {
                return null;
            }
            if (schedule != null) {
                return schedule;
            }
            return requested == null || requested.strip().equalsIgnoreCase(AUTOMATIC) ? defaultSchedule : requested;
        }

        /** The sigmas of {@code steps} steps for the model with the schedule the user asked for ({@link #scheduleFor}). */
        public double[] sigmas(String requested, DiscreteSchedule model, int steps) {
            String s = scheduleFor(requested);
            return s == null ? timeGrid.sigmas(model, steps) : ScheduleNames.sigmas(s, model, steps, discardPenultimateSigma);
        }
    }

    private record Entry(Supplier<Sampler> sampler, boolean discardPenultimate, double cfgScaleMultiplier,
                         String defaultSchedule, TimeGrid timeGrid) {
    }

    /** A1111's "second_order" samplers and their ComfyUI namesakes. */
    private static final java.util.Set<String> SECOND_ORDER = java.util.Set.of("Heun", "DPM2", "DPM2 a", "DPM++ 2S a",
            "DPM++ SDE", "Restart", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
            "dpmpp_sde", "dpmpp_sde_gpu");
    private static final Map<String, Entry> A1111 = new LinkedHashMap<>();
    private static final Map<String, Entry> COMFY = new LinkedHashMap<>();

    static {
        // AUTOMATIC1111 (k-diffusion underneath: churn noise drawn every step, LMS integrates the last step);
        // "Automatic" is each sampler's default schedule since A1111 1.8 (Uniform where none is named)
        a1111("Euler", Euler::new, false, "Uniform");
        a1111("Euler a", EulerAncestral::new, false, "Uniform");
        a1111("LMS", () -> new Lms(4, false), false, "Uniform");
        a1111("Heun", Heun::new, false, "Uniform");
        a1111("DPM2", Dpm2::new, true, "Karras");
        a1111("DPM2 a", Dpm2Ancestral::new, true, "Karras");
        a1111("DPM++ 2S a", DpmPp2sAncestral::new, false, "Karras");
        a1111("DPM++ 2M", DpmPp2m::new, false, "Karras");
        a1111("DPM++ SDE", DpmPpSde::new, false, "Karras");
        a1111("DPM++ 2M SDE", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT), false, "Exponential");
        a1111("DPM++ 2M SDE Heun", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.HEUN), false, "Exponential");
        a1111("DPM++ 3M SDE", DpmPp3mSde::new, true, "Exponential");
        a1111("DPM fast", DpmFast::new, false, "Uniform");
        a1111("DPM adaptive", DpmAdaptive::new, false, "Uniform");
        a1111("LCM", Lcm::new, false, "Uniform");
        a1111("Restart", Restart::automatic, false, "Karras");
        // A1111's timestep samplers: CompVis's DDIM timesteps, and UniPC's continuous time grid (uniform in t)
        ownGrid("DDIM", () -> new Ddim(0), 1, DiscreteSchedule::ddimSigmas);
        ownGrid("PLMS", Plms::new, 1, DiscreteSchedule::ddimSigmas);
        ownGrid("UniPC", UniPc::new, 1, (model, steps) -> UniPc.a1111Sigmas(model, steps, UniPc.SkipType.TIME_UNIFORM));
        ownGrid("DDIM CFG++", () -> new DdimCfgPp(0), 1 / DdimCfgPp.CFG_SCALE_DIVISOR, DiscreteSchedule::ddimSigmas);
        // ComfyUI (its copy of k-diffusion: churn noise only when used, LMS ends on the denoised estimate)
        Churn comfyChurn = Churn.NONE.drawnOnlyWhenUsed();
        comfy("euler", () -> new Euler(comfyChurn), false);
        comfy("euler_ancestral", EulerAncestral::new, false);
        comfy("heun", () -> new Heun(comfyChurn), false);
        comfy("dpm_2", () -> new Dpm2(comfyChurn), true);
        comfy("dpm_2_ancestral", Dpm2Ancestral::new, true);
        comfy("lms", () -> new Lms(4, true), false);
        comfy("dpm_fast", DpmFast::new, false);
        comfy("dpm_adaptive", DpmAdaptive::new, false);
        comfy("dpmpp_2s_ancestral", DpmPp2sAncestral::new, false);
        comfy("dpmpp_sde", DpmPpSde::new, false);
        comfy("dpmpp_sde_gpu", DpmPpSde::new, false);
        comfy("dpmpp_2m", DpmPp2m::new, false);
        comfy("dpmpp_2m_sde", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT), false);
        comfy("dpmpp_2m_sde_gpu", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT), false);
        comfy("dpmpp_2m_sde_heun", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.HEUN), false);
        comfy("dpmpp_2m_sde_heun_gpu", () -> new DpmPp2mSde(DpmPp2mSde.SolverType.HEUN), false);
        comfy("dpmpp_3m_sde", DpmPp3mSde::new, false);
        comfy("dpmpp_3m_sde_gpu", DpmPp3mSde::new, false);
        comfy("ddim", () -> new Euler(comfyChurn), false);
        comfy("heunpp2", Heunpp2::new, false);
        comfy("lcm", Lcm::new, false);
        comfy("seeds_2", Seeds::two, false);
        comfy("seeds_3", Seeds::three, false);
        comfy("exp_heun_2_x0", Seeds::expHeun2X0, false);
        comfy("exp_heun_2_x0_sde", Seeds::expHeun2X0Sde, false);
        comfy("er_sde", ErSde::new, false);
        comfy("ddpm", Ddpm::new, false);
        comfy("ipndm", () -> new Ipndm(4, false), false);
        comfy("ipndm_v", () -> new Ipndm(4, true), false);
        comfy("deis", Deis::new, false);
        comfy("uni_pc", () -> new UniPc.ComfyUi(UniPc.Variant.BH1), true);
        comfy("uni_pc_bh2", () -> new UniPc.ComfyUi(UniPc.Variant.BH2), true);
        comfy("sa_solver", () -> new SaSolver(false), false);
        comfy("sa_solver_pece", () -> new SaSolver(true), false);
        comfy("res_multistep", () -> new ResMultistep(0, 1, false), false);
        comfy("res_multistep_cfg_pp", () -> new ResMultistep(0, 1, true), false);
        comfy("res_multistep_ancestral", () -> new ResMultistep(1, 1, false), false);
        comfy("res_multistep_ancestral_cfg_pp", () -> new ResMultistep(1, 1, true), false);
        comfy("gradient_estimation", () -> new GradientEstimation(2, false), false);
        comfy("gradient_estimation_cfg_pp", () -> new GradientEstimation(2, true), false);
        comfy("euler_cfg_pp", EulerCfgPp::new, false);
        comfy("euler_ancestral_cfg_pp", EulerCfgPp::ancestral, false);
        comfy("dpmpp_2m_cfg_pp", DpmPp2mCfgPp::new, false);
        comfy("dpmpp_2s_ancestral_cfg_pp", DpmPp2sAncestralCfgPp::new, false);
    }

    private SamplerNames() {
    }

    private static void a1111(String name, Supplier<Sampler> s, boolean discard, String defaultSchedule) {
        A1111.put(name, new Entry(s, discard, 1, defaultSchedule, null));
    }

    private static void ownGrid(String name, Supplier<Sampler> s, double cfgScaleMultiplier, TimeGrid grid) {
        A1111.put(name, new Entry(s, false, cfgScaleMultiplier, null, grid));
    }

    /** ComfyUI has no "Automatic"; its KSampler's first schedule is "normal". */
    private static void comfy(String name, Supplier<Sampler> s, boolean discard) {
        COMFY.put(name, new Entry(s, discard, 1, "normal", null));
    }

    /** Every name this resolves (A1111's, then ComfyUI's), without the combined ones. */
    public static java.util.List<String> names() {
        java.util.List<String> all = new java.util.ArrayList<>(A1111.keySet());
        all.addAll(COMFY.keySet());
        return all;
    }

    /**
     * Resolves a sampler name. A1111 names match ignoring case; a trailing " Karras" or
     * " Exponential" (the old combined names) selects that schedule; ComfyUI names match exactly.
     */
    public static Resolved resolve(String name) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("no sampler name given");
        }
        String n = name.strip();
        Entry comfy = COMFY.get(n);
        if (comfy != null) {
            return new Resolved(n, comfy.sampler().get(), null, comfy.discardPenultimate(), comfy.cfgScaleMultiplier(),
                    comfy.defaultSchedule(), null, SECOND_ORDER.contains(n));
        }
        String schedule = null;
        String base = n;
        for (String suffix : new String[] {" Karras", " Exponential"}) {
            if (n.toLowerCase(Locale.ROOT).endsWith(suffix.toLowerCase(Locale.ROOT))) {
                schedule = suffix.strip();
                base = n.substring(0, n.length() - suffix.length());
                break;
            }
        }
        for (Map.Entry<String, Entry> e : A1111.entrySet()) {
            if (e.getKey().equalsIgnoreCase(base)) {
                Entry entry = e.getValue();
                return new Resolved(e.getKey(), entry.sampler().get(), entry.timeGrid() == null ? schedule : null,
                        entry.discardPenultimate(), entry.cfgScaleMultiplier(), entry.defaultSchedule(), entry.timeGrid(),
                        SECOND_ORDER.contains(e.getKey()));
            }
        }
        throw new IllegalArgumentException("unknown sampler \"" + name + "\"; known: " + String.join(", ", names())
                + " (A1111 names may end in \" Karras\" or \" Exponential\")");
    }
}
