package dev.jdiffusion.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code jdiffusion} command line. Only this package prints; the library logs. */
@Command(name = "jdiffusion", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Stable Diffusion inference on the JVM.",
        subcommands = {DoctorCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        int code = new CommandLine(new Main()).execute(args);
        System.exit(code);
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
