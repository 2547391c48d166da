/* commands.h — the `resnetd` subcommands. Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or config (docs/cli.md). */
#ifndef RESNETD_COMMANDS_H
#define RESNETD_COMMANDS_H

int cmd_serve(int argc, char **argv);      /* server/..., cli/cmd_serve.c */
int cmd_classify(int argc, char **argv);   /* cli/cmd_classify.c */
int cmd_infer(int argc, char **argv);      /* cli/cmd_infer.c */
int cmd_preprocess(int argc, char **argv); /* cli/cmd_preprocess.c */
int cmd_bench(int argc, char **argv);      /* cli/cmd_bench.c */
int cmd_quantize(int argc, char **argv);   /* cli/cmd_quantize.c */

#endif
