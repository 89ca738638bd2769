fn main() {
    println!("{}", gaussflow::Engine::cpu().describe());
}
