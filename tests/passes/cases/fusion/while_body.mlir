// RUN: fusion dce
// Kernels form inside loop regions too: the predicate's reduction and the body's chain
// are fused ops in their regions, reading the loop's block arguments.
func @main(%x: tensor<8xf64>) {
  %w = while %x : (tensor<8xf64>) -> tensor<8xf64> {
  ^bb0(%a: tensor<8xf64>):
    %s = reduce_sum %a {axes = [0], keepdims = false} : (tensor<8xf64>) -> tensor<f64>
    %ten = constant {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %go = less %s, %ten : (tensor<f64>, tensor<f64>) -> tensor<i1>
    condition %go : (tensor<i1>)
  } do {
  ^bb0(%b: tensor<8xf64>):
    %half = constant {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %e = exp %b : (tensor<8xf64>) -> tensor<8xf64>
    %m = mul %e, %half : (tensor<8xf64>, tensor<f64>) -> tensor<8xf64>
    %n = add %m, %b : (tensor<8xf64>, tensor<8xf64>) -> tensor<8xf64>
    yield %n : (tensor<8xf64>)
  }
  return %w : (tensor<8xf64>)
}
// CHECK:      while %arg0
// CHECK-NEXT: ^bb0([[A:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[S:%[0-9]+]] = fused [[A]] : (tensor<8xf64>) -> tensor<f64> {
// CHECK:          reduce_sum
// CHECK:        [[GO:%[0-9]+]] = fused [[S]] : (tensor<f64>) -> tensor<i1> {
// CHECK:          less
// CHECK:        condition [[GO]]
// CHECK-NEXT: } do {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[N:%[0-9]+]] = fused [[B]] : (tensor<8xf64>) -> tensor<8xf64> {
// CHECK:          exp
// CHECK-NEXT:     constant
// CHECK-NEXT:     mul
// CHECK-NEXT:     add
// CHECK-NEXT:     yield
// CHECK-NEXT:   }
// CHECK-NEXT:   yield [[N]]
