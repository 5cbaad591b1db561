package dev.jdiffusion.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code jdiffusion} command line. Only this package prints; the library logs. */
@Command(name = "jdiffusion", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Stable Diffusion inference on the JVM.",
        subcommands = {GenerateCommand.class, Img2ImgCommand.class, InfoCommand.class, DoctorCommand.class, ConvertCommand.class, LoraExtractCommand.class, SamplersCommand.class,
            CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        int code = commandLine().execute(args);
        System.exit(code);
    }

    /** The command line with its error handling: bad input is reported in one line, without a stack trace. */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, line, parsed) -> {
            line.getErr().println("jdiffusion " + String.join(" ", parsed.originalArgs()).split(" ")[0] + ": "
                    + (ex.getMessage() == null ? ex.toString() : ex.getMessage()));
            return ex instanceof IllegalArgumentException || ex instanceof java.io.IOException ? 2 : 1;
        });
        return cl;
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"jdiffusion " + (v == null ? "(development build)" : v)};
        }
    }
}
