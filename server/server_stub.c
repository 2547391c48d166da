/* server_stub.c — placeholder until the server lands. */
int server_placeholder(void);
int server_placeholder(void) {
    return 0;
}
