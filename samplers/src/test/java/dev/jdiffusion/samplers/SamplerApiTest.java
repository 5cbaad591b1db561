package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SamplerApiTest {
    private static final double[] MU = {0.3, -0.2, 0.5, 0.0};
    private static final ToyDenoiser TOY = ToyDenoiser.gaussian(MU, 0.5);

    @Test
    void automaticIsTheSamplersDefaultScheduleAndTimestepSamplersKeepTheirOwnGrid() {
        DiscreteSchedule sd = DiscreteSchedule.stableDiffusion();
        assertEquals("Karras", SamplerNames.resolve("DPM++ 2M").scheduleFor("Automatic"));
        assertEquals("Exponential", SamplerNames.resolve("DPM++ 2M SDE").scheduleFor("automatic"));
        assertEquals("Exponential", SamplerNames.resolve("DPM++ 3M SDE").scheduleFor("Automatic"));
        assertEquals("Karras", SamplerNames.resolve("DPM2 a").scheduleFor("Automatic"));
        assertEquals("Uniform", SamplerNames.resolve("Euler a").scheduleFor("Automatic"));
        assertEquals("SGM Uniform", SamplerNames.resolve("DPM++ 2M").scheduleFor("SGM Uniform"), "a named schedule wins");
        assertEquals("Karras", SamplerNames.resolve("DPM++ 2M Karras").scheduleFor("Exponential"),
                "the combined name's schedule wins, as A1111 reads it");
        assertEquals("normal", SamplerNames.resolve("dpmpp_2m").scheduleFor("Automatic"));
        assertArrayEquals(ScheduleNames.sigmas("Karras", sd, 20, false), SamplerNames.resolve("DPM++ 2M").sigmas("Automatic", sd, 20));
        assertArrayEquals(ScheduleNames.sigmas("Karras", sd, 20, true), SamplerNames.resolve("DPM2").sigmas("Automatic", sd, 20));

        SamplerNames.Resolved unipc = SamplerNames.resolve("UniPC");
        assertNull(unipc.scheduleFor("Karras"));
        double[] grid = unipc.sigmas("Karras", sd, 20);
        assertArrayEquals(UniPc.a1111Sigmas(sd, 20, UniPc.SkipType.TIME_UNIFORM), grid);
        assertEquals(21, grid.length);
        assertTrue(grid[20] > 0, "A1111's UniPC ends at the smallest training sigma");
        double[] x = new double[] {1, -1, 0.5, 2};
        double[] out = unipc.sampler().sample((z, sigma) -> new double[z.length], x, grid, (a, b) -> new double[4],
                StepListener.NONE);
        assertEquals(4, out.length);
        assertArrayEquals(sd.ddimSigmas(10), SamplerNames.resolve("DDIM").sigmas("Exponential", sd, 10));
        assertArrayEquals(sd.ddimSigmas(10), SamplerNames.resolve("PLMS").sigmas("Automatic", sd, 10));
        assertArrayEquals(sd.ddimSigmas(10), SamplerNames.resolve("DDIM CFG++").sigmas("Automatic", sd, 10));
        assertNull(SamplerNames.resolve("DDIM Karras").schedule(), "DDIM ignores the schedule, also in a combined name");
        assertEquals(40, SamplerNames.resolve("Heun").promptScheduleSteps(20), "A1111 counts two evaluations a step");
        assertEquals(40, SamplerNames.resolve("DPM++ SDE Karras").promptScheduleSteps(20));
        assertEquals(20, SamplerNames.resolve("DPM++ 2M").promptScheduleSteps(20));
    }

    @Test
    void namesOfBothToolsAndTheOldCombinedNamesResolve() {
        SamplerNames.Resolved r = SamplerNames.resolve("DPM++ 2M Karras");
        assertInstanceOf(DpmPp2m.class, r.sampler());
        assertEquals("Karras", r.schedule());
        r = SamplerNames.resolve("DPM++ 2M SDE Heun Exponential");
        assertEquals(new DpmPp2mSde(DpmPp2mSde.SolverType.HEUN), r.sampler());
        assertEquals("Exponential", r.schedule());
        r = SamplerNames.resolve("lms karras");
        assertEquals(new Lms(4, false), r.sampler());
        assertEquals("Karras", r.schedule());
        assertEquals(new Lms(4, true), SamplerNames.resolve("lms").sampler(), "ComfyUI's LMS ends on the denoised estimate");
        r = SamplerNames.resolve("Euler a");
        assertInstanceOf(EulerAncestral.class, r.sampler());
        assertNull(r.schedule());
        assertEquals(new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT), SamplerNames.resolve("dpmpp_2m_sde_gpu").sampler());
        assertTrue(SamplerNames.resolve("DPM2 a").discardPenultimateSigma());
        assertTrue(SamplerNames.resolve("DPM++ 3M SDE").discardPenultimateSigma());
        assertEquals(false, SamplerNames.resolve("dpmpp_3m_sde").discardPenultimateSigma());
        assertEquals(false, ((Euler) SamplerNames.resolve("euler").sampler()).churn().drawEveryStep());
        assertEquals(EulerCfgPp.ancestral(), SamplerNames.resolve("euler_ancestral_cfg_pp").sampler());
        assertEquals(new Ipndm(4, true), SamplerNames.resolve("ipndm_v").sampler());
        assertEquals(new ResMultistep(1, 1, true), SamplerNames.resolve("res_multistep_ancestral_cfg_pp").sampler());
        assertEquals(new Lcm(), SamplerNames.resolve("LCM").sampler());
        assertEquals(new Lcm(), SamplerNames.resolve("lcm").sampler());
        assertEquals(Seeds.three(), SamplerNames.resolve("seeds_3").sampler());
        assertEquals(new ErSde(1, 3), SamplerNames.resolve("er_sde").sampler());
        assertEquals(new Deis(3), SamplerNames.resolve("deis").sampler());
        assertEquals(Seeds.expHeun2X0(), SamplerNames.resolve("exp_heun_2_x0").sampler());
        assertEquals(new Seeds(2, 1, 1, 1, Double.NaN, true), SamplerNames.resolve("exp_heun_2_x0_sde").sampler());
        assertThrows(IllegalArgumentException.class, () -> new Seeds(3, 1, 1, 1 / 3.0, 2 / 3.0, true));
        assertEquals(new SaSolver(false), SamplerNames.resolve("sa_solver").sampler());
        assertTrue(((SaSolver) SamplerNames.resolve("sa_solver_pece").sampler()).pece());
        assertEquals(new UniPc.ComfyUi(UniPc.Variant.BH2), SamplerNames.resolve("uni_pc_bh2").sampler());
        assertTrue(SamplerNames.resolve("uni_pc").discardPenultimateSigma());
        assertThrows(IllegalArgumentException.class, () -> new Deis(5));
        assertThrows(IllegalArgumentException.class, () -> new SaSolver(3, 4, 1, 1, false, false, 0.5, 5));
        assertThrows(IllegalArgumentException.class, () -> new UniPc.ComfyUi(UniPc.Variant.VARY_COEFF));
        assertThrows(IllegalArgumentException.class, () -> new UniPc.ComfyUi(UniPc.Variant.BH1)
                .sample((x, sigma) -> x, new double[4], new double[] {14.6, 0}, (a, b) -> new double[4], StepListener.NONE));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SamplerNames.resolve("Euler b"));
        assertTrue(e.getMessage().contains("Euler b") && e.getMessage().contains("DPM++ 2M"), e.getMessage());
    }

    @Test
    void namedSchedulesSpanTheModelsSigmasAndCanDropThePenultimateSigma() {
        DiscreteSchedule sd = DiscreteSchedule.stableDiffusion();
        double[] k = ScheduleNames.sigmas("Karras", sd, 10, false);
        assertEquals(11, k.length);
        assertEquals(sd.sigmaMax(), k[0], 1e-12);
        assertEquals(sd.sigmaMin(), k[9], 1e-12);
        assertEquals(0, k[10]);
        double[] full = ScheduleNames.sigmas("karras", sd, 11, false);
        double[] dropped = ScheduleNames.sigmas("Karras", sd, 10, true);
        assertEquals(11, dropped.length);
        assertArrayEquals(java.util.Arrays.copyOf(full, 10), java.util.Arrays.copyOf(dropped, 10));
        assertEquals(0, dropped[10]);
        assertArrayEquals(sd.uniform(20), ScheduleNames.sigmas("Automatic", sd, 20, false));
        assertThrows(IllegalArgumentException.class, () -> ScheduleNames.sigmas("Karras", sd, 0, false));
        assertThrows(IllegalArgumentException.class, () -> ScheduleNames.sigmas("Fibonacci", sd, 10, false));
    }

    @Test
    void everyListedScheduleResolvesToADecreasingScheduleInTheModelsRange() {
        DiscreteSchedule sd = DiscreteSchedule.stableDiffusion();
        for (String name : ScheduleNames.names()) {
            for (int steps : new int[] {2, 7, 20, 33}) {
                double[] s = ScheduleNames.sigmas(name, sd, steps, false);
                // the DDIM spacings take every (1000 // steps)-th timestep, so one more where steps does not divide 1000
                int most = name.startsWith("DDIM") || name.startsWith("ddim") ? steps + 2 : steps + 1;
                assertTrue(s.length >= 2 && s.length <= most, name + "/" + steps + ": " + s.length + " sigmas");
                assertTrue(s[0] <= sd.sigmaMax() * (1 + 1e-6), name + " starts above sigma_max: " + s[0]);
                for (int i = 0; i + 1 < s.length; i++) {
                    assertTrue(s[i + 1] < s[i], name + "/" + steps + " does not decrease at " + i);
                }
                double last = s[s.length - 1];
                assertTrue(last == 0 || name.equals("laplace") || name.equals("DDIM"), name + " ends at " + last);
            }
        }
        assertArrayEquals(ScheduleNames.sigmas("sgm_uniform", sd, 12, false), ScheduleNames.sigmas("SGM Uniform", sd, 12, false));
        assertArrayEquals(ScheduleNames.sigmas("kl_optimal", sd, 12, false), ScheduleNames.sigmas("KL Optimal", sd, 12, false));
        assertEquals(ScheduleNames.sigmas("Align Your Steps", sd, 10, false)[1], 6.4745760956, 1e-6);
        assertEquals(ScheduleNames.sigmas("Align Your Steps SDXL", sd, 10, false)[1], 6.3184485287, 1e-6);
    }

    @Test
    void restartIsHeunBelowTwentyStepsAndKeepsTheStepCountWithItsRestarts() {
        double[] mu = {0.3, -0.2, 0.5, 0.1};
        ToyDenoiser model = ToyDenoiser.gaussian(mu, 0.5);
        double[] x = {9, -7, 3, 12};
        double[] sigmas = Schedules.karras(12, 0.03, 14.6, 7);
        NoiseSource none = (a, b) -> {
            throw new AssertionError("no restart below 20 steps, so no noise");
        };
        // (k-diffusion's Heun draws its churn noise every step and multiplies it by 0)
        assertArrayEquals(new Heun().sample(model, x, sigmas, (a, b) -> new double[4], StepListener.NONE),
                Restart.automatic().sample(model, x, sigmas, none, StepListener.NONE));
        assertEquals(Restart.automatic(), SamplerNames.resolve("Restart").sampler());
        for (int steps : new int[] {20, 25, 36, 50}) {
            double[] s = Schedules.karras(steps, 0.03, 14.6, 7);
            java.util.List<Step> seen = new java.util.ArrayList<>();
            int[] draws = {0};
            Restart.automatic().sample(model, x, s, (a, b) -> {
                draws[0]++;
                assertTrue(a < b, "a restart jumps up: " + a + " -> " + b);
                return new double[4];
            }, seen::add);
            // A1111 takes the restart steps out of the main schedule: the step count stays the same
            assertEquals(steps, seen.size(), steps + " steps");
            assertEquals(steps >= 36 ? 2 : 1, draws[0], "restarts at " + steps + " steps");
        }
        assertThrows(IllegalArgumentException.class, () -> new Restart.Interval(2, 10, 1, 0.1));
    }

    @Test
    void scheduleParametersOutsideTheirDomainAreRejectedByName() {
        ModelSampling ms = ModelSampling.stableDiffusion();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> AlignYourSteps.gits(1.23, 10, 1)).getMessage()
                .contains("0.80 to 1.50"));
        assertThrows(IllegalArgumentException.class, () -> AlignYourSteps.gits(1.2, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> Schedules.klOptimal(1, 0.03, 14.6));
        assertThrows(IllegalArgumentException.class, () -> ms.beta(10, 0, 0.6));
        assertThrows(IllegalArgumentException.class, () -> ms.beta(10, 0.6, Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Schedules.linearQuadratic(10, 14.6, 0.025, 10));
        assertThrows(IllegalArgumentException.class, () -> AlignYourSteps.sigmas(AlignYourSteps.Model.SD1, 10, 1.5));
        assertEquals(0, AlignYourSteps.sigmas(AlignYourSteps.Model.SD1, 10, 0).length);
        // GITS beyond 20 steps interpolates the 20-step row: same ends, one more sigma per step
        double[] g = AlignYourSteps.gits(1.2, 30, 1);
        assertEquals(31, g.length);
        assertEquals(14.61464119, g[0], 1e-5);
        assertEquals(0, g[30]);
    }

    @Test
    void epsAndVModelsGiveTheSameDenoiserAsTheDataTheyWereMadeFrom() {
        DiscreteSchedule sd = DiscreteSchedule.stableDiffusion();
        // an eps and a v network that know the toy's exact posterior, written from their textbook definitions
        DiffusionModel eps = (scaled, t) -> {
            double sigma = sd.tToSigma(t);
            double[] z = new double[scaled.length];
            for (int i = 0; i < z.length; i++) {
                z[i] = scaled[i] * Math.sqrt(sigma * sigma + 1);
            }
            double[] x0 = TOY.denoise(z, sigma);
            double[] e = new double[z.length];
            for (int i = 0; i < z.length; i++) {
                e[i] = (z[i] - x0[i]) / sigma;
            }
            return e;
        };
        DiffusionModel v = (scaled, t) -> {
            double sigma = sd.tToSigma(t);
            double alpha = 1 / Math.sqrt(1 + sigma * sigma);
            double sigmaVp = sigma * alpha;
            double[] e = eps.apply(scaled, t);
            double[] z = new double[scaled.length];
            for (int i = 0; i < z.length; i++) {
                z[i] = scaled[i] / alpha;
            }
            double[] x0 = TOY.denoise(z, sigma);
            double[] out = new double[z.length];
            for (int i = 0; i < z.length; i++) {
                out[i] = alpha * e[i] - sigmaVp * x0[i]; // v = α·eps − σ·x0
            }
            return out;
        };
        double[] x = {3.0, -1.0, 0.25, 7.5};
        // sigmas of the table, whose timesteps are whole numbers, so the network sees exactly this sigma
        for (int t : new int[] {999, 500, 137, 0}) {
            double sigma = sd.sigmas()[t];
            double[] want = TOY.denoise(x, sigma);
            assertArrayEquals(want, new DiscreteDenoiser(eps, sd, DiffusionModel.Parameterization.EPSILON).denoise(x, sigma),
                    1e-9);
            assertArrayEquals(want, new DiscreteDenoiser(v, sd, DiffusionModel.Parameterization.V_PREDICTION)
                    .denoise(x, sigma), 1e-9);
        }
    }

    @Test
    void guidanceEvaluatesBothPromptsAsOneBatchAndExtrapolates() {
        List<Integer> batchSizes = new ArrayList<>();
        PairedDenoiser pair = (xx, sigma) -> {
            batchSizes.add(xx.length);
            double[] out = new double[xx.length];
            for (int i = 0; i < xx.length / 2; i++) {
                out[i] = 1.0;                       // uncond
                out[xx.length / 2 + i] = 3.0 + i;   // cond
            }
            return out;
        };
        double[] d = new CfgDenoiser(pair, 7.5).denoise(new double[] {0, 0, 0}, 1.0);
        assertArrayEquals(new double[] {1 + 7.5 * 2, 1 + 7.5 * 3, 1 + 7.5 * 4}, d, 1e-12);
        assertEquals(List.of(6), batchSizes);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CfgDenoiser(pair, Double.NaN));
        assertTrue(e.getMessage().contains("CFG scale"), e.getMessage());
    }

    @Test
    void aListenerSeesEveryStepAndCanCancel() {
        double[] sigmas = Schedules.karras(10, 0.03, 14.6, 7);
        List<Integer> seen = new ArrayList<>();
        SamplingCancelledException e = assertThrows(SamplingCancelledException.class, () -> new DpmPp2m().sample(TOY,
                new double[] {1, 2, 3, 4}, sigmas, (a, b) -> new double[4], step -> {
                    seen.add(step.index());
                    return step.index() < 3;
                }));
        assertEquals(3, e.step());
        assertEquals(List.of(0, 1, 2, 3), seen);
    }

    @Test
    void badSchedulesAndParametersGetClearErrors() {
        double[] x = {1, 2, 3, 4};
        NoiseSource none = (a, b) -> new double[4];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Euler().sample(TOY, x, new double[] {14.6, Double.NaN, 0}, none, StepListener.NONE));
        assertTrue(e.getMessage().contains("sigma 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Euler().sample(TOY, x, new double[] {1}, none, StepListener.NONE));
        assertThrows(IllegalArgumentException.class, () -> new EulerAncestral(-1, 1));
        assertThrows(IllegalArgumentException.class, () -> new Lms(0, false));
        assertThrows(IllegalArgumentException.class, () -> new DpmAdaptive(4, 0.05, 0.0078, 0.05, 0, 1, 0, 0.81, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new UniPc().sample(TOY, x, Schedules.karras(5, 0.03, 14.6, 7),
                none, StepListener.NONE), "UniPC cannot step to sigma 0");
        assertThrows(IllegalArgumentException.class, () -> DiscreteSchedule.of(new double[] {0.9, 0.95}));
        assertThrows(IllegalArgumentException.class, () -> DiscreteSchedule.stableDiffusion().ddimTimesteps(1000));
        double[] before = x.clone();
        new Heun().sample(TOY, x, Schedules.karras(4, 0.03, 14.6, 7), none, StepListener.NONE);
        assertArrayEquals(before, x, "the input is not modified");
    }
}
